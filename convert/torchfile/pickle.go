package torchfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits on what one file may make the machine build. Every length is also
// checked against the bytes left in its stream before anything is allocated.
const (
	maxStack      = 10000   // VM stack entries: in a pickle, nesting depth plus one batch
	maxMarks      = 10000   // open MARKs
	maxObjects    = 1 << 25 // values pushed, over all the pickles of one file
	maxMemo       = 1 << 22 // memo entries in one pickle
	maxLongBytes  = 1 << 16 // LONG1/LONG4 payload: ints of up to 512 Ki bits
	maxNumberText = 4096    // the text of a protocol-0 number
	maxTextLine   = 1 << 20 // any other protocol-0 text argument
	maxString     = 1 << 28 // one str, kept in memory
)

// lazyBytes is the longest byte string copied into memory; a var for tests.
var lazyBytes int64 = 64 << 10

// loader holds what the pickles of one file share.
type loader struct {
	objects int
	blob    bool // inside a _load_from_bytes blob, which may not nest another
}

// machine runs one pickle: a stack machine over a whitelist of globals that
// only ever builds data.
type machine struct {
	ld         *loader
	s          *stream
	name       string // stream name for messages
	stack      []Value
	marks      []int
	memo       map[int64]Value
	persistent func(pid Value) (Value, error)
}

func newMachine(ld *loader, s *stream, name string) *machine {
	return &machine{ld: ld, s: s, name: name, memo: map[int64]Value{}}
}

// pickleError is a failure at one opcode of one stream.
type pickleError struct {
	name string
	at   int64
	err  error
}

func (e *pickleError) Error() string {
	return fmt.Sprintf("%s at offset %d: %v", e.name, e.at, e.err)
}
func (e *pickleError) Unwrap() error { return e.err }

func (m *machine) markBase() int {
	if len(m.marks) == 0 {
		return 0
	}
	return m.marks[len(m.marks)-1]
}

func (m *machine) push(v Value) error {
	if len(m.stack) >= maxStack {
		return fmt.Errorf("stack deeper than %d entries (nesting too deep)", maxStack)
	}
	m.ld.objects++
	if m.ld.objects > maxObjects {
		return fmt.Errorf("more than %d objects", maxObjects)
	}
	m.stack = append(m.stack, v)
	return nil
}

func (m *machine) pop() (Value, error) {
	if len(m.stack) <= m.markBase() {
		return nil, errors.New("stack underflow")
	}
	v := m.stack[len(m.stack)-1]
	m.stack[len(m.stack)-1] = nil
	m.stack = m.stack[:len(m.stack)-1]
	return v, nil
}

func (m *machine) top() (Value, error) {
	if len(m.stack) <= m.markBase() {
		return nil, errors.New("stack underflow")
	}
	return m.stack[len(m.stack)-1], nil
}

// popMark removes and returns the items above the last MARK.
func (m *machine) popMark() ([]Value, error) {
	if len(m.marks) == 0 {
		return nil, errors.New("no MARK to pop to")
	}
	k := m.marks[len(m.marks)-1]
	m.marks = m.marks[:len(m.marks)-1]
	items := append([]Value(nil), m.stack[k:]...)
	clear(m.stack[k:])
	m.stack = m.stack[:k]
	return items, nil
}

func (m *machine) u8() (int64, error) {
	b, err := m.s.readByte()
	return int64(b), err
}

func (m *machine) fixed(n int) ([]byte, error) { return m.s.read(int64(n)) }

func (m *machine) u16() (int64, error) {
	b, err := m.fixed(2)
	if err != nil {
		return 0, err
	}
	return int64(binary.LittleEndian.Uint16(b)), nil
}

func (m *machine) u32() (int64, error) {
	b, err := m.fixed(4)
	if err != nil {
		return 0, err
	}
	return int64(binary.LittleEndian.Uint32(b)), nil
}

func (m *machine) i32() (int64, error) {
	b, err := m.fixed(4)
	if err != nil {
		return 0, err
	}
	return int64(int32(binary.LittleEndian.Uint32(b))), nil
}

func (m *machine) u64() (int64, error) {
	b, err := m.fixed(8)
	if err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint64(b)
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("length %d exceeds the %d bytes left", v, m.s.left())
	}
	return int64(v), nil
}

// bytesOf reads a byte string of length n: in memory up to lazyBytes, else
// as a *Bytes section left in the file.
func (m *machine) bytesOf(n int64) (Value, error) {
	if n > lazyBytes {
		b := &Bytes{r: m.s.r, Offset: m.s.pos, Len: n}
		if err := m.s.skip(n); err != nil {
			return nil, err
		}
		return b, nil
	}
	return m.s.read(n)
}

func (m *machine) str(n int64) (Value, error) {
	if n > m.s.left() {
		return nil, fmt.Errorf("length %d exceeds the %d bytes left", n, m.s.left())
	}
	if n > maxString {
		return nil, fmt.Errorf("string of %d bytes is longer than %d", n, maxString)
	}
	b, err := m.s.read(n)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// run executes opcodes up to STOP and returns the pickled object.
func (m *machine) run() (Value, error) {
	for {
		at := m.s.pos
		op, err := m.s.readByte()
		if err != nil {
			return nil, &pickleError{m.name, at, fmt.Errorf("%v (no STOP opcode)", err)}
		}
		done, v, err := m.step(op)
		if err != nil {
			var pe *pickleError
			if errors.As(err, &pe) {
				return nil, err // already placed (a nested blob)
			}
			return nil, &pickleError{m.name, at, fmt.Errorf("%s: %w", opName(op), err)}
		}
		if done {
			return v, nil
		}
	}
}

func (m *machine) step(op byte) (done bool, result Value, err error) {
	var v Value
	switch op {
	case '(': // MARK
		if len(m.marks) >= maxMarks {
			return false, nil, fmt.Errorf("more than %d open MARKs (nesting too deep)", maxMarks)
		}
		m.marks = append(m.marks, len(m.stack))
		return false, nil, nil
	case '.': // STOP
		v, err := m.pop()
		return err == nil, v, err
	case '0': // POP
		if len(m.stack) > m.markBase() {
			_, err = m.pop()
		} else {
			_, err = m.popMark()
		}
		return false, nil, err
	case '1': // POP_MARK
		_, err = m.popMark()
		return false, nil, err
	case '2': // DUP
		v, err = m.top()
	case 0x80: // PROTO
		var p int64
		if p, err = m.u8(); err == nil && p > 5 {
			err = fmt.Errorf("unsupported pickle protocol %d", p)
		}
		return false, nil, err
	case 0x95: // FRAME: a hint for buffering, checked and ignored
		var n int64
		n, err = m.u64()
		if err == nil && n > m.s.left() {
			err = fmt.Errorf("frame of %d bytes exceeds the %d bytes left", n, m.s.left())
		}
		return false, nil, err
	case 'N':
		v = nil
	case 0x88:
		v = true
	case 0x89:
		v = false
	case 'J': // BININT
		v, err = m.i32()
	case 'K': // BININT1
		v, err = m.u8()
	case 'M': // BININT2
		v, err = m.u16()
	case 0x8a: // LONG1
		var n int64
		if n, err = m.u8(); err == nil {
			v, err = m.long(n)
		}
	case 0x8b: // LONG4
		var n int64
		if n, err = m.i32(); err == nil {
			if n < 0 || n > maxLongBytes {
				err = fmt.Errorf("LONG4 of %d bytes (limit %d)", n, maxLongBytes)
			} else {
				v, err = m.long(n)
			}
		}
	case 'I': // INT (text)
		var line []byte
		if line, err = m.s.readLine(maxNumberText); err == nil {
			switch string(line) {
			case "00":
				v = false
			case "01":
				v = true
			default:
				v, err = parseInt(string(line))
			}
		}
	case 'L': // LONG (text)
		var line []byte
		if line, err = m.s.readLine(maxNumberText); err == nil {
			v, err = parseInt(strings.TrimSuffix(string(line), "L"))
		}
	case 'F': // FLOAT (text)
		var line []byte
		if line, err = m.s.readLine(maxNumberText); err == nil {
			v, err = strconv.ParseFloat(string(line), 64)
		}
	case 'G': // BINFLOAT, big-endian
		var b []byte
		if b, err = m.fixed(8); err == nil {
			v = math.Float64frombits(binary.BigEndian.Uint64(b))
		}
	case 'X': // BINUNICODE
		var n int64
		if n, err = m.u32(); err == nil {
			v, err = m.str(n)
		}
	case 0x8c: // SHORT_BINUNICODE
		var n int64
		if n, err = m.u8(); err == nil {
			v, err = m.str(n)
		}
	case 0x8d: // BINUNICODE8
		var n int64
		if n, err = m.u64(); err == nil {
			v, err = m.str(n)
		}
	case 'T': // BINSTRING (Python 2 str, read as text as torch.load does)
		var n int64
		if n, err = m.i32(); err == nil {
			if n < 0 {
				err = fmt.Errorf("negative length %d", n)
			} else {
				v, err = m.str(n)
			}
		}
	case 'U': // SHORT_BINSTRING
		var n int64
		if n, err = m.u8(); err == nil {
			v, err = m.str(n)
		}
	case 'S': // STRING: a quoted Python 2 literal
		var line []byte
		if line, err = m.s.readLine(maxTextLine); err == nil {
			v, err = unquoteString(line)
		}
	case 'V': // UNICODE: raw-unicode-escape
		var line []byte
		if line, err = m.s.readLine(maxTextLine); err == nil {
			v, err = rawUnicodeEscape(line)
		}
	case 'B': // BINBYTES
		var n int64
		if n, err = m.u32(); err == nil {
			v, err = m.bytesOf(n)
		}
	case 'C': // SHORT_BINBYTES
		var n int64
		if n, err = m.u8(); err == nil {
			v, err = m.bytesOf(n)
		}
	case 0x8e, 0x96: // BINBYTES8, BYTEARRAY8
		var n int64
		if n, err = m.u64(); err == nil {
			v, err = m.bytesOf(n)
		}
	case ')':
		v = Tuple{}
	case 't', 0x85, 0x86, 0x87: // TUPLE, TUPLE1..3
		var items []Value
		if op == 't' {
			items, err = m.popMark()
		} else {
			items = make([]Value, op-0x84)
			for i := len(items) - 1; i >= 0 && err == nil; i-- {
				items[i], err = m.pop()
			}
		}
		v = Tuple(items)
	case ']':
		v = &List{}
	case 'l': // LIST
		var items []Value
		items, err = m.popMark()
		v = &List{Items: items}
	case 'a', 'e': // APPEND, APPENDS
		var items []Value
		if op == 'a' {
			var x Value
			x, err = m.pop()
			items = []Value{x}
		} else {
			items, err = m.popMark()
		}
		if err != nil {
			return false, nil, err
		}
		var t Value
		if t, err = m.top(); err != nil {
			return false, nil, err
		}
		l, ok := t.(*List)
		if !ok {
			return false, nil, fmt.Errorf("APPEND to a %s", typeName(t))
		}
		l.Items = append(l.Items, items...)
		return false, nil, nil
	case '}':
		v = &Dict{}
	case 'd': // DICT
		var items []Value
		if items, err = m.popMark(); err == nil {
			d := &Dict{}
			err = setItems(d, items)
			v = d
		}
	case 's', 'u': // SETITEM, SETITEMS
		var items []Value
		if op == 's' {
			items = make([]Value, 2)
			if items[1], err = m.pop(); err == nil {
				items[0], err = m.pop()
			}
		} else {
			items, err = m.popMark()
		}
		if err != nil {
			return false, nil, err
		}
		var t Value
		if t, err = m.top(); err != nil {
			return false, nil, err
		}
		d, ok := t.(*Dict)
		if !ok {
			return false, nil, fmt.Errorf("SETITEM on a %s", typeName(t))
		}
		return false, nil, setItems(d, items)
	case 0x8f: // EMPTY_SET
		v = &Set{}
	case 0x90: // ADDITEMS
		var items []Value
		if items, err = m.popMark(); err != nil {
			return false, nil, err
		}
		var t Value
		if t, err = m.top(); err != nil {
			return false, nil, err
		}
		s, ok := t.(*Set)
		if !ok || s.Frozen {
			return false, nil, fmt.Errorf("ADDITEMS on a %s", typeName(t))
		}
		s.Items = append(s.Items, items...)
		return false, nil, nil
	case 0x91: // FROZENSET
		var items []Value
		items, err = m.popMark()
		v = &Set{Items: items, Frozen: true}
	case 'p', 'q', 'r', 0x94: // PUT, BINPUT, LONG_BINPUT, MEMOIZE
		var k int64
		switch op {
		case 'p':
			k, err = m.textIndex()
		case 'q':
			k, err = m.u8()
		case 'r':
			k, err = m.u32()
		default:
			k = int64(len(m.memo))
		}
		if err != nil {
			return false, nil, err
		}
		var t Value
		if t, err = m.top(); err != nil {
			return false, nil, err
		}
		if _, ok := m.memo[k]; !ok && len(m.memo) >= maxMemo {
			return false, nil, fmt.Errorf("more than %d memo entries", maxMemo)
		}
		m.memo[k] = t
		return false, nil, nil
	case 'g', 'h', 'j': // GET, BINGET, LONG_BINGET
		var k int64
		switch op {
		case 'g':
			k, err = m.textIndex()
		case 'h':
			k, err = m.u8()
		default:
			k, err = m.u32()
		}
		if err != nil {
			return false, nil, err
		}
		var ok bool
		if v, ok = m.memo[k]; !ok {
			return false, nil, fmt.Errorf("memo has no entry %d", k)
		}
		// A GET copies a reference; it does not count as a new object.
		if len(m.stack) >= maxStack {
			return false, nil, fmt.Errorf("stack deeper than %d entries (nesting too deep)", maxStack)
		}
		m.stack = append(m.stack, v)
		return false, nil, nil
	case 'c': // GLOBAL
		var mod, name []byte
		if mod, err = m.s.readLine(maxTextLine); err == nil {
			if name, err = m.s.readLine(maxTextLine); err == nil {
				v, err = lookupGlobal(string(mod), string(name))
			}
		}
	case 0x93: // STACK_GLOBAL
		var mod, name Value
		if name, err = m.pop(); err == nil {
			mod, err = m.pop()
		}
		if err != nil {
			return false, nil, err
		}
		ms, ok1 := mod.(string)
		ns, ok2 := name.(string)
		if !ok1 || !ok2 {
			return false, nil, fmt.Errorf("STACK_GLOBAL with a %s and a %s, not two strs", typeName(mod), typeName(name))
		}
		v, err = lookupGlobal(ms, ns)
	case 'R': // REDUCE
		var f, args Value
		if args, err = m.pop(); err == nil {
			f, err = m.pop()
		}
		if err == nil {
			v, err = m.call(f, args)
		}
	case 0x81: // NEWOBJ
		var cls, args Value
		if args, err = m.pop(); err == nil {
			cls, err = m.pop()
		}
		if err == nil {
			v, err = m.newObj(cls, args, nil)
		}
	case 0x92: // NEWOBJ_EX
		var cls, args, kw Value
		if kw, err = m.pop(); err == nil {
			if args, err = m.pop(); err == nil {
				cls, err = m.pop()
			}
		}
		if err == nil {
			v, err = m.newObj(cls, args, kw)
		}
	case 'b': // BUILD
		var state, inst Value
		if state, err = m.pop(); err == nil {
			if inst, err = m.top(); err == nil {
				err = build(inst, state)
			}
		}
		return false, nil, err
	case 'Q': // BINPERSID
		var pid Value
		if pid, err = m.pop(); err == nil {
			v, err = m.persistentLoad(pid)
		}
	case 'P': // PERSID
		var line []byte
		if line, err = m.s.readLine(maxTextLine); err == nil {
			v, err = m.persistentLoad(string(line))
		}
	case 'i', 'o':
		return false, nil, fmt.Errorf("INST/OBJ (protocol 0/1 class instantiation) is not supported")
	case 0x82, 0x83, 0x84:
		return false, nil, fmt.Errorf("EXT (copyreg extension registry) is not supported")
	case 0x97, 0x98:
		return false, nil, fmt.Errorf("out-of-band buffers are not supported")
	default:
		return false, nil, fmt.Errorf("unknown opcode")
	}
	if err != nil {
		return false, nil, err
	}
	return false, nil, m.push(v)
}

func (m *machine) persistentLoad(pid Value) (Value, error) {
	if m.persistent == nil {
		return nil, fmt.Errorf("persistent id %s in a pickle that has no storages", shortRepr(pid))
	}
	return m.persistent(pid)
}

func (m *machine) textIndex() (int64, error) {
	line, err := m.s.readLine(maxNumberText)
	if err != nil {
		return 0, err
	}
	k, err := strconv.ParseInt(string(line), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad memo index %q", line)
	}
	return k, nil
}

// long decodes n bytes of little-endian two's complement.
func (m *machine) long(n int64) (Value, error) {
	b, err := m.s.read(n)
	if err != nil {
		return nil, err
	}
	if n <= 8 {
		var u uint64
		for i := len(b) - 1; i >= 0; i-- {
			u = u<<8 | uint64(b[i])
		}
		if n > 0 && n < 8 && b[n-1]&0x80 != 0 {
			u |= ^uint64(0) << (8 * uint(n)) // sign-extend
		}
		return int64(u), nil
	}
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	x := new(big.Int).SetBytes(be)
	if b[n-1]&0x80 != 0 {
		x.Sub(x, new(big.Int).Lsh(big.NewInt(1), uint(8*n)))
	}
	if x.IsInt64() {
		return x.Int64(), nil
	}
	return x, nil
}

func parseInt(s string) (Value, error) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i, nil
	}
	x, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return nil, fmt.Errorf("bad integer %q", s)
	}
	return x, nil
}

func setItems(d *Dict, items []Value) error {
	if len(items)%2 != 0 {
		return fmt.Errorf("odd number (%d) of dict items", len(items))
	}
	for i := 0; i < len(items); i += 2 {
		if err := d.set(items[i], items[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// unquoteString decodes the argument of STRING: a Python 2 repr, single or
// double quoted, with backslash escapes.
func unquoteString(line []byte) (Value, error) {
	if len(line) < 2 || line[0] != line[len(line)-1] || (line[0] != '\'' && line[0] != '"') {
		return nil, errors.New("STRING argument is not quoted")
	}
	in := line[1 : len(line)-1]
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); i++ {
		c := in[i]
		if c != '\\' || i+1 == len(in) {
			out = append(out, c)
			continue
		}
		i++
		switch e := in[i]; e {
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case 'r':
			out = append(out, '\r')
		case 'a':
			out = append(out, 7)
		case 'b':
			out = append(out, 8)
		case 'f':
			out = append(out, 12)
		case 'v':
			out = append(out, 11)
		case '\n':
		case 'x':
			if i+2 >= len(in) {
				return nil, errors.New("truncated \\x escape in STRING")
			}
			h, err := strconv.ParseUint(string(in[i+1:i+3]), 16, 8)
			if err != nil {
				return nil, errors.New("bad \\x escape in STRING")
			}
			out = append(out, byte(h))
			i += 2
		default:
			if e >= '0' && e <= '7' {
				o := 0
				j := i
				for ; j < len(in) && j < i+3 && in[j] >= '0' && in[j] <= '7'; j++ {
					o = o*8 + int(in[j]-'0')
				}
				out = append(out, byte(o))
				i = j - 1
			} else {
				out = append(out, '\\', e) // Python keeps unknown escapes
			}
		}
	}
	return string(out), nil
}

// rawUnicodeEscape decodes the argument of UNICODE: bytes are Latin-1 except
// \uXXXX and \UXXXXXXXX escapes.
func rawUnicodeEscape(line []byte) (Value, error) {
	var sb strings.Builder
	for i := 0; i < len(line); i++ {
		c := line[i]
		if c == '\\' && i+1 < len(line) && (line[i+1] == 'u' || line[i+1] == 'U') {
			n := 4
			if line[i+1] == 'U' {
				n = 8
			}
			if i+2+n > len(line) {
				return nil, errors.New("truncated \\u escape in UNICODE")
			}
			r, err := strconv.ParseUint(string(line[i+2:i+2+n]), 16, 32)
			if err != nil || r > utf8.MaxRune {
				return nil, errors.New("bad \\u escape in UNICODE")
			}
			sb.WriteRune(rune(r))
			i += 1 + n
			continue
		}
		sb.WriteRune(rune(c))
	}
	return sb.String(), nil
}

// shortRepr names a value in an error message without dumping it whole.
func shortRepr(v Value) string { return shortReprDepth(v, 0) }

func shortReprDepth(v Value, depth int) string {
	switch v := v.(type) {
	case string:
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return strconv.Quote(v)
	case Tuple:
		if depth > 1 {
			return "(...)"
		}
		parts := []string{}
		for i, e := range v {
			if i == 3 {
				parts = append(parts, "...")
				break
			}
			parts = append(parts, shortReprDepth(e, depth+1))
		}
		return "(" + strings.Join(parts, ", ") + ")"
	case int64, bool, float64:
		return fmt.Sprint(v)
	}
	return "a " + typeName(v)
}

var opNames = map[byte]string{
	'(': "MARK", '.': "STOP", '0': "POP", '1': "POP_MARK", '2': "DUP", 'F': "FLOAT",
	'I': "INT", 'J': "BININT", 'K': "BININT1", 'L': "LONG", 'M': "BININT2", 'N': "NONE",
	'P': "PERSID", 'Q': "BINPERSID", 'R': "REDUCE", 'S': "STRING", 'T': "BINSTRING",
	'U': "SHORT_BINSTRING", 'V': "UNICODE", 'X': "BINUNICODE", 'a': "APPEND", 'b': "BUILD",
	'c': "GLOBAL", 'd': "DICT", '}': "EMPTY_DICT", 'e': "APPENDS", 'g': "GET", 'h': "BINGET",
	'i': "INST", 'j': "LONG_BINGET", 'l': "LIST", ']': "EMPTY_LIST", 'o': "OBJ", 'p': "PUT",
	'q': "BINPUT", 'r': "LONG_BINPUT", 's': "SETITEM", 't': "TUPLE", ')': "EMPTY_TUPLE",
	'u': "SETITEMS", 'G': "BINFLOAT", 'B': "BINBYTES", 'C': "SHORT_BINBYTES",
	0x80: "PROTO", 0x81: "NEWOBJ", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4", 0x85: "TUPLE1",
	0x86: "TUPLE2", 0x87: "TUPLE3", 0x88: "NEWTRUE", 0x89: "NEWFALSE", 0x8a: "LONG1",
	0x8b: "LONG4", 0x8c: "SHORT_BINUNICODE", 0x8d: "BINUNICODE8", 0x8e: "BINBYTES8",
	0x8f: "EMPTY_SET", 0x90: "ADDITEMS", 0x91: "FROZENSET", 0x92: "NEWOBJ_EX",
	0x93: "STACK_GLOBAL", 0x94: "MEMOIZE", 0x95: "FRAME", 0x96: "BYTEARRAY8",
	0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
}

// opName is "GLOBAL (0x63)", or "opcode 0xff" for a byte that is no opcode.
func opName(op byte) string {
	if n, ok := opNames[op]; ok {
		return fmt.Sprintf("%s (0x%02x)", n, op)
	}
	return fmt.Sprintf("opcode 0x%02x", op)
}
