package torchfile

import (
	"fmt"
	"io"
	"math"
	"math/big"
)

// Value is one unpickled object. It is one of:
//
//	nil, bool, int64, *big.Int (ints beyond int64), float64, string,
//	[]byte (byte strings up to 64 KiB), *Bytes (longer byte strings, left in the file),
//	Tuple, *List, *Set, *Dict, *Tensor, *Object.
//
// Lists, sets and dicts are pointers because a pickle may share them (and
// even make them contain themselves); a walker over Root must allow for that.
type Value = any

// Tuple is a Python tuple (torch.Size reads as a Tuple too).
type Tuple []Value

// List is a Python list.
type List struct{ Items []Value }

// Set is a Python set or frozenset, items in pickle order.
type Set struct {
	Items  []Value
	Frozen bool
}

// Dict is a Python dict or a whitelisted dict subclass, keys in insertion
// order. Class is "" for a plain dict, else the subclass's global name
// ("collections.OrderedDict", "dnnlib.util.EasyDict", ...). Attrs holds the
// instance attributes set by BUILD, if any: the _metadata of a state dict's
// OrderedDict lands there, not among the keys.
type Dict struct {
	Class        string
	Keys, Values []Value
	Attrs        Value
	index        map[hkey]int
}

// Len is the number of entries.
func (d *Dict) Len() int { return len(d.Keys) }

// Get returns the value stored under the string key k.
func (d *Dict) Get(k string) (Value, bool) {
	if i, ok := d.index[hkey{kind: 's', s: k}]; ok {
		return d.Values[i], true
	}
	return nil, false
}

// set stores v under k, replacing an equal key as Python does.
func (d *Dict) set(k, v Value) error {
	h, err := hashKey(k, len(d.Keys))
	if err != nil {
		return err
	}
	if d.index == nil {
		d.index = map[hkey]int{}
	}
	if i, ok := d.index[h]; ok {
		d.Values[i] = v
		return nil
	}
	d.index[h] = len(d.Keys)
	d.Keys = append(d.Keys, k)
	d.Values = append(d.Values, v)
	return nil
}

// hkey is a comparable stand-in for a hashable Python key. Numbers that
// Python considers equal (True, 1, 1.0) map to the same hkey.
type hkey struct {
	kind byte
	s    string
	i    int64
	f    float64
}

// hashKey maps a key to its hkey. Tuples, frozensets, tensors and objects
// are kept as distinct keys without comparing them: pickle.dump never writes
// one key twice, and comparing tuples that share parts through the memo could
// cost exponential time.
func hashKey(k Value, pos int) (hkey, error) {
	switch k := k.(type) {
	case nil:
		return hkey{kind: 'n'}, nil
	case string:
		return hkey{kind: 's', s: k}, nil
	case []byte:
		return hkey{kind: 'b', s: string(k)}, nil
	case bool:
		if k {
			return hkey{kind: 'i', i: 1}, nil
		}
		return hkey{kind: 'i'}, nil
	case int64:
		return hkey{kind: 'i', i: k}, nil
	case *big.Int:
		return hkey{kind: 'I', s: k.String()}, nil
	case float64:
		if k == math.Trunc(k) && math.Abs(k) < 1<<62 {
			return hkey{kind: 'i', i: int64(k)}, nil
		}
		return hkey{kind: 'f', f: k}, nil
	case Tuple, *Bytes, *Tensor:
		return hkey{kind: 'u', i: int64(pos)}, nil
	case *Set:
		if k.Frozen {
			return hkey{kind: 'u', i: int64(pos)}, nil
		}
	case *Object:
		if k.g != nil { // a global used as a key (a dtype, say): by name
			return hkey{kind: 'o', s: k.Class}, nil
		}
		return hkey{kind: 'u', i: int64(pos)}, nil
	}
	return hkey{}, fmt.Errorf("unhashable dict key of type %s", typeName(k))
}

// Object is an instance of a whitelisted class that is not a container:
// Class is its name and State what the pickle gave it. For an NVlabs
// persistent class (torch_utils.persistence), Class is the pickled class name,
// State the instance __dict__ (a *Dict with _parameters, _buffers, _modules,
// ... for an nn.Module), and Source the pickled module source, kept as text and
// never run. A numpy array reads as Class "numpy.ndarray" with a *Tensor State;
// torch.device as Class "torch.device" with the Tuple of its arguments; a bare
// global that was never called (a torch dtype, say) as its name with nil State.
type Object struct {
	Class  string
	State  Value
	Source string

	g  *global  // set for a global: what calling it does
	np *npDType // set for a numpy.dtype
	nd bool     // a numpy.ndarray still waiting for its BUILD
	// data is set for a whitelisted plain class (cls.__new__ then BUILD with
	// its __dict__): the instance is only its state.
	data bool
}

// Bytes is a byte string too large to be worth copying into memory: Len
// bytes at Offset of the underlying file (or of the zip entry holding the
// pickle).
type Bytes struct {
	r           io.ReaderAt
	Offset, Len int64
}

// Reader returns a reader over the bytes.
func (b *Bytes) Reader() *io.SectionReader { return io.NewSectionReader(b.r, b.Offset, b.Len) }

func typeName(v Value) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int64, *big.Int:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []byte, *Bytes:
		return "bytes"
	case Tuple:
		return "tuple"
	case *List:
		return "list"
	case *Set:
		return "set"
	case *Dict:
		if v.Class != "" {
			return v.Class
		}
		return "dict"
	case *Tensor:
		if v.bare {
			return "storage"
		}
		return "tensor"
	case *Object:
		return v.Class
	}
	return fmt.Sprintf("%T", v)
}
