package torchfile

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"ddgi/safetensors"
)

// global is one whitelisted Python name and what the machine does instead of
// importing it. Nothing here runs code from the file: each entry builds data.
type global struct {
	name string
	// call models REDUCE (f(*args)); nil: not callable.
	call func(m *machine, args Tuple) (Value, error)
	// newObj models NEWOBJ (cls.__new__(cls, *args)) for a class; nil: not a class we make.
	newObj func(args Tuple) (Value, error)
	// storage is set for the torch storage classes: their element type.
	storage safetensors.DType
	// dtype is set for torch dtypes: the tensor element type, or "" for one
	// that ddgi cannot hold (complex, unsigned wider than 8 bits, fp8).
	isDType bool
	dtype   safetensors.DType
}

var whitelist = map[string]*global{}

func allow(g *global) { whitelist[g.name] = g }

func init() {
	// Containers.
	for _, name := range []string{
		"collections.OrderedDict",
		// dict subclasses that carry nothing but their items.
		"dnnlib.util.EasyDict", "dnnlib.EasyDict",
		"pytorch_lightning.utilities.parsing.AttributeDict",
		"lightning_fabric.utilities.data.AttributeDict",
		"lightning.fabric.utilities.data.AttributeDict",
	} {
		name := name
		mk := func(args Tuple) (Value, error) { return newDict(name, args) }
		allow(&global{name: name, newObj: mk, call: func(_ *machine, a Tuple) (Value, error) { return mk(a) }})
	}
	// Plain classes pickled as cls.__new__(cls) + BUILD(__dict__): a
	// rosinality checkpoint's argparse.Namespace, and the modules NVlabs'
	// EG3D pickles by name (its renderer, decoder and torch.nn containers).
	// Their instances are data: the class is a name, the state a dict.
	for _, name := range []string{
		"argparse.Namespace",
		"torch.nn.modules.container.Sequential", "torch.nn.modules.container.ModuleList", "torch.nn.modules.container.ModuleDict",
		"torch.nn.modules.activation.Softplus", "torch.nn.modules.activation.ReLU", "torch.nn.modules.activation.LeakyReLU",
		"torch.nn.modules.activation.Sigmoid", "torch.nn.modules.activation.Tanh", "torch.nn.modules.activation.SiLU",
		"torch.nn.modules.activation.GELU", "torch.nn.modules.linear.Linear", "torch.nn.modules.linear.Identity",
		"training.triplane.OSGDecoder",
		"training.volumetric_rendering.renderer.ImportanceRenderer",
		"training.volumetric_rendering.ray_marcher.MipRayMarcher2",
		"training.volumetric_rendering.ray_sampler.RaySampler",
	} {
		name := name
		allow(&global{name: name, newObj: func(args Tuple) (Value, error) {
			if len(args) != 0 {
				return nil, fmt.Errorf("%s.__new__ with %d arguments", name, len(args))
			}
			return &Object{Class: name, data: true}, nil
		}})
	}
	for _, name := range []string{"builtins.set", "builtins.frozenset"} {
		frozen := strings.HasSuffix(name, "frozenset")
		allow(&global{name: name, call: func(_ *machine, a Tuple) (Value, error) { return newSet(a, frozen) }})
	}
	// Protocol 2 writes bytes as _codecs.encode(text, 'latin1').
	allow(&global{name: "_codecs.encode", call: codecsEncode})

	// Tensors and storages.
	allow(&global{name: "torch._utils._rebuild_tensor", call: rebuildTensor})
	allow(&global{name: "torch._utils._rebuild_tensor_v2", call: rebuildTensorV2})
	allow(&global{name: "torch._utils._rebuild_tensor_v3", call: rebuildTensorV3})
	allow(&global{name: "torch._utils._rebuild_parameter", call: rebuildParameter})
	allow(&global{name: "torch._utils._rebuild_parameter_with_state", call: rebuildParameter})
	allow(&global{name: "torch._tensor._rebuild_from_type_v2", call: rebuildFromType})
	allow(&global{name: "torch.Tensor"})
	allow(&global{name: "torch.nn.parameter.Parameter"})
	allow(&global{name: "torch.storage._load_from_bytes", call: loadFromBytes})
	allow(&global{name: "torch.Size", call: torchSize})
	allow(&global{name: "torch.device", call: func(_ *machine, a Tuple) (Value, error) {
		return &Object{Class: "torch.device", State: a}, nil
	}})
	storages := map[string]safetensors.DType{
		"FloatStorage": safetensors.F32, "DoubleStorage": safetensors.F64,
		"HalfStorage": safetensors.F16, "BFloat16Storage": safetensors.BF16,
		"LongStorage": safetensors.I64, "IntStorage": safetensors.I32,
		"ShortStorage": safetensors.I16, "CharStorage": safetensors.I8,
		"ByteStorage": safetensors.U8, "BoolStorage": safetensors.BOOL,
	}
	for n, dt := range storages {
		// torch.cuda.* only in files from before PyTorch 1.10 or so; the data
		// is in the file all the same.
		allow(&global{name: "torch." + n, storage: dt})
		allow(&global{name: "torch.cuda." + n, storage: dt})
	}
	for _, n := range []string{"torch.UntypedStorage", "torch.storage.UntypedStorage", "torch._UntypedStorage", "torch.storage._UntypedStorage"} {
		allow(&global{name: n, storage: safetensors.U8})
	}
	dtypes := map[string]safetensors.DType{
		"float32": safetensors.F32, "float": safetensors.F32,
		"float64": safetensors.F64, "double": safetensors.F64,
		"float16": safetensors.F16, "half": safetensors.F16,
		"bfloat16": safetensors.BF16,
		"int64":    safetensors.I64, "long": safetensors.I64,
		"int32": safetensors.I32, "int": safetensors.I32,
		"int16": safetensors.I16, "short": safetensors.I16,
		"int8": safetensors.I8, "uint8": safetensors.U8, "bool": safetensors.BOOL,
		// Known, harmless as values, but not tensors ddgi can hold.
		"complex32": "", "complex64": "", "complex128": "", "cfloat": "", "cdouble": "", "chalf": "",
		"uint16": "", "uint32": "", "uint64": "",
		"float8_e4m3fn": "", "float8_e5m2": "", "float8_e4m3fnuz": "", "float8_e5m2fnuz": "",
	}
	for n, dt := range dtypes {
		allow(&global{name: "torch." + n, isDType: true, dtype: dt})
	}

	// NVlabs network pickles (stylegan2-ada-pytorch, stylegan3, eg3d).
	allow(&global{name: "torch_utils.persistence._reconstruct_persistent_obj", call: reconstructPersistent})

	// numpy: scalars and arrays in the attributes of NVlabs modules.
	for _, core := range []string{"numpy.core", "numpy._core"} {
		allow(&global{name: core + ".multiarray.scalar", call: numpyScalar})
		allow(&global{name: core + ".multiarray._reconstruct", call: numpyReconstruct})
		allow(&global{name: core + ".numeric._frombuffer", call: numpyFromBuffer})
	}
	allow(&global{name: "numpy.dtype", call: numpyDType})
	allow(&global{name: "numpy.ndarray"})
}

// lookupGlobal resolves GLOBAL/STACK_GLOBAL against the whitelist.
func lookupGlobal(mod, name string) (Value, error) {
	if mod == "__builtin__" { // Python 2 name, as Python's fix_imports maps it
		mod = "builtins"
	}
	full := mod + "." + name
	g, ok := whitelist[full]
	if !ok {
		return nil, fmt.Errorf("global %s is not on the whitelist (nothing was run)", quoteName(full))
	}
	return &Object{Class: full, g: g}, nil
}

// quoteName prints a name plainly unless it holds odd characters.
func quoteName(s string) string {
	q := strconv.Quote(s)
	if q[1:len(q)-1] == s && !strings.ContainsAny(s, " ") {
		return s
	}
	return q
}

func (m *machine) call(f, args Value) (Value, error) {
	a, ok := args.(Tuple)
	if !ok {
		return nil, fmt.Errorf("REDUCE arguments are a %s, not a tuple", typeName(args))
	}
	o, ok := f.(*Object)
	if !ok || o.g == nil || o.g.call == nil {
		return nil, fmt.Errorf("REDUCE on %s, which is not callable here", typeName(f))
	}
	v, err := o.g.call(m, a)
	if err != nil {
		var pe *pickleError
		if errors.As(err, &pe) {
			return nil, err
		}
		return nil, fmt.Errorf("%s: %w", o.Class, err)
	}
	return v, nil
}

func (m *machine) newObj(cls, args, kw Value) (Value, error) {
	a, ok := args.(Tuple)
	if !ok {
		return nil, fmt.Errorf("NEWOBJ arguments are a %s, not a tuple", typeName(args))
	}
	if kw != nil {
		if d, ok := kw.(*Dict); !ok || d.Len() != 0 {
			return nil, fmt.Errorf("NEWOBJ_EX with keyword arguments")
		}
	}
	o, ok := cls.(*Object)
	if !ok || o.g == nil || o.g.newObj == nil {
		return nil, fmt.Errorf("NEWOBJ on %s, which is not a class made here", typeName(cls))
	}
	return o.g.newObj(a)
}

// build models BUILD (setting an instance's state) for the objects that have
// one; anything else is an error.
func build(inst, state Value) error {
	switch x := inst.(type) {
	case *Dict:
		// An OrderedDict from a state dict gets {'_metadata': ...} here.
		x.Attrs = state
		return nil
	case *Object:
		switch {
		case x.data && x.State == nil:
			x.State = state
			return nil
		case x.np != nil:
			return x.np.setState(state)
		case x.nd:
			return ndarraySetState(x, state)
		}
	}
	return fmt.Errorf("BUILD on a %s", typeName(inst))
}

func newDict(class string, args Tuple) (Value, error) {
	d := &Dict{Class: class}
	if len(args) == 0 {
		return d, nil
	}
	if len(args) > 1 {
		return nil, fmt.Errorf("%d arguments", len(args))
	}
	// OrderedDict([(k, v), ...]) in protocols 0 and 1; a dict to copy.
	switch src := args[0].(type) {
	case *Dict:
		for i := range src.Keys {
			if err := d.set(src.Keys[i], src.Values[i]); err != nil {
				return nil, err
			}
		}
	case *List, Tuple:
		for _, p := range items(src) {
			kv := items(p)
			if len(kv) != 2 {
				return nil, fmt.Errorf("item is a %s, not a (key, value) pair", typeName(p))
			}
			if err := d.set(kv[0], kv[1]); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("cannot make a dict from a %s", typeName(src))
	}
	return d, nil
}

func newSet(args Tuple, frozen bool) (Value, error) {
	s := &Set{Frozen: frozen}
	if len(args) == 0 {
		return s, nil
	}
	if len(args) > 1 {
		return nil, fmt.Errorf("%d arguments", len(args))
	}
	switch src := args[0].(type) {
	case *List, Tuple:
		s.Items = append(s.Items, items(src)...)
	case *Set:
		s.Items = append(s.Items, src.Items...)
	default:
		return nil, fmt.Errorf("cannot make a set from a %s", typeName(src))
	}
	return s, nil
}

// items returns the elements of a list or tuple, else nil.
func items(v Value) []Value {
	switch v := v.(type) {
	case *List:
		return v.Items
	case Tuple:
		return v
	}
	return nil
}

func codecsEncode(_ *machine, a Tuple) (Value, error) {
	if len(a) != 2 {
		return nil, fmt.Errorf("%d arguments", len(a))
	}
	s, ok1 := a[0].(string)
	enc, ok2 := a[1].(string)
	if !ok1 || !ok2 {
		return nil, errors.New("arguments are not (str, str)")
	}
	if e := strings.ToLower(strings.ReplaceAll(enc, "-", "")); e != "latin1" && e != "iso88591" {
		return nil, fmt.Errorf("encoding %q (only latin1 is read)", enc)
	}
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			return nil, fmt.Errorf("character U+%04X is not latin1", r)
		}
		out = append(out, byte(r))
	}
	return out, nil
}

func torchSize(_ *machine, a Tuple) (Value, error) {
	if len(a) == 0 {
		return Tuple{}, nil
	}
	if len(a) != 1 {
		return nil, fmt.Errorf("%d arguments", len(a))
	}
	switch t := a[0].(type) {
	case Tuple:
		return t, nil
	case *List:
		return Tuple(append([]Value(nil), t.Items...)), nil
	}
	return nil, fmt.Errorf("argument is a %s", typeName(a[0]))
}

// reconstructPersistent models torch_utils.persistence._reconstruct_persistent_obj:
// instead of executing meta['module_src'] and making the class, it returns an
// *Object holding the class name and the pickled instance state.
func reconstructPersistent(_ *machine, a Tuple) (Value, error) {
	if len(a) != 1 {
		return nil, fmt.Errorf("%d arguments", len(a))
	}
	meta, ok := a[0].(*Dict)
	if !ok {
		return nil, fmt.Errorf("meta is a %s, not a dict", typeName(a[0]))
	}
	if t, _ := meta.Get("type"); t != "class" {
		return nil, fmt.Errorf("meta type is %s, not 'class'", shortRepr(t))
	}
	name, ok := getString(meta, "class_name")
	if !ok {
		return nil, errors.New("meta has no class_name")
	}
	src, _ := getString(meta, "module_src")
	state, _ := meta.Get("state")
	return &Object{Class: name, State: state, Source: src}, nil
}

func getString(d *Dict, k string) (string, bool) {
	v, ok := d.Get(k)
	s, ok2 := v.(string)
	return s, ok && ok2
}
