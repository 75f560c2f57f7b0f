package torchfile

import (
	"fmt"
	"strconv"
)

const maxWalkDepth = 10000

// maxWalkSteps bounds the walk: a pickle can share one dict from many places,
// so a small file can describe a tree with 2^n paths. A var for tests.
var maxWalkSteps = 1 << 24

// Tensors flattens v into its tensors by dotted name, the way a state dict
// names them:
//
//   - a dict contributes each value under its key (str keys, and int keys in
//     decimal; other keys and all lists are skipped);
//   - an *Object that is an nn.Module (its state has _parameters, _buffers or
//     _modules) contributes its parameters, its persistent buffers and its
//     submodules as nn.Module.state_dict does, plus any other attribute that
//     is a torch tensor or a dict holding only tensors;
//   - any other *Object contributes its state like a dict;
//   - a numpy array counts as a tensor inside dicts, not as a module attribute.
//
// A tensor at the top level is named "". A tensor reachable by two paths
// (tied weights) appears under both names. Two tensors with one name are an
// error, as is a structure nested deeper than 10,000 levels, containing
// itself, or needing more than 16M steps to walk.
func Tensors(v Value) (out map[string]*Tensor, err error) {
	defer func() {
		if !catchPanics {
			return
		}
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("torchfile: internal error: %v", p)
		}
	}()
	w := &walker{out: map[string]*Tensor{}, onPath: map[any]bool{}, pure: map[*Dict]bool{}}
	if err := w.walk("", v, 0); err != nil {
		return nil, fmt.Errorf("torchfile: %w", err)
	}
	return w.out, nil
}

type walker struct {
	out    map[string]*Tensor
	onPath map[any]bool
	pure   map[*Dict]bool // onlyTensors results
	steps  int
}

// maxNameLen bounds a dotted name, and with it the cost of building names
// down a deep structure with long keys.
const maxNameLen = 1 << 16

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

func keyName(k Value) (string, bool) {
	switch k := k.(type) {
	case string:
		return k, true
	case int64:
		return strconv.FormatInt(k, 10), true
	}
	return "", false
}

func (w *walker) add(name string, t *Tensor) error {
	if _, dup := w.out[name]; dup {
		return fmt.Errorf("two tensors are named %q", name)
	}
	w.out[name] = t
	return nil
}

// enter guards against cycles and depth; the caller must call leave.
func (w *walker) enter(prefix string, c any, depth int) error {
	if depth > maxWalkDepth {
		return fmt.Errorf("%q: nested deeper than %d levels", prefix, maxWalkDepth)
	}
	if w.onPath[c] {
		return fmt.Errorf("%q: the structure contains itself", prefix)
	}
	w.onPath[c] = true
	return nil
}

func (w *walker) walk(prefix string, v Value, depth int) error {
	if w.steps++; w.steps > maxWalkSteps {
		return fmt.Errorf("more than %d steps to walk (shared sub-structures?)", maxWalkSteps)
	}
	if len(prefix) > maxNameLen {
		return fmt.Errorf("name %.40q... longer than %d bytes", prefix, maxNameLen)
	}
	switch x := v.(type) {
	case *Tensor:
		return w.add(prefix, x)
	case *Dict:
		if err := w.enter(prefix, x, depth); err != nil {
			return err
		}
		defer delete(w.onPath, x)
		for i, k := range x.Keys {
			if name, ok := keyName(k); ok {
				if err := w.walk(join(prefix, name), x.Values[i], depth+1); err != nil {
					return err
				}
			}
		}
	case *Object:
		if x.Class == "numpy.ndarray" {
			if t, ok := x.State.(*Tensor); ok {
				return w.add(prefix, t)
			}
			return nil
		}
		st, ok := x.State.(*Dict)
		if !ok {
			return nil
		}
		if !isModule(st) {
			return w.walk(prefix, st, depth)
		}
		if err := w.enter(prefix, x, depth); err != nil {
			return err
		}
		defer delete(w.onPath, x)
		return w.module(prefix, st, depth)
	}
	return nil
}

func isModule(st *Dict) bool {
	for _, k := range []string{"_parameters", "_buffers", "_modules"} {
		if _, ok := st.Get(k); ok {
			return true
		}
	}
	return false
}

// module follows nn.Module.state_dict: parameters, buffers that are not
// non-persistent, then submodules, each skipping None.
func (w *walker) module(prefix string, st *Dict, depth int) error {
	skip := map[string]bool{}
	if s, ok := st.Get("_non_persistent_buffers_set"); ok {
		if s, ok := s.(*Set); ok {
			for _, n := range s.Items {
				if n, ok := n.(string); ok {
					skip[n] = true
				}
			}
		}
	}
	for _, group := range []string{"_parameters", "_buffers"} {
		g, _ := st.Get(group)
		d, ok := g.(*Dict)
		if !ok {
			continue
		}
		for i, k := range d.Keys {
			name, ok := k.(string)
			t, isT := d.Values[i].(*Tensor)
			if !ok || !isT || (group == "_buffers" && skip[name]) {
				continue
			}
			if err := w.add(join(prefix, name), t); err != nil {
				return err
			}
		}
	}
	if g, ok := st.Get("_modules"); ok {
		if d, ok := g.(*Dict); ok {
			for i, k := range d.Keys {
				if name, ok := k.(string); ok {
					if err := w.walk(join(prefix, name), d.Values[i], depth+1); err != nil {
						return err
					}
				}
			}
		}
	}
	for i, k := range st.Keys {
		name, ok := k.(string)
		if !ok || name == "_parameters" || name == "_buffers" || name == "_modules" {
			continue
		}
		switch x := st.Values[i].(type) {
		case *Tensor:
			if err := w.add(join(prefix, name), x); err != nil {
				return err
			}
		case *Dict:
			if w.onlyTensors(x, 0) {
				if err := w.walk(join(prefix, name), x, depth+1); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// onlyTensors reports a non-empty dict whose values are all torch tensors or
// such dicts.
func (w *walker) onlyTensors(d *Dict, depth int) bool {
	if r, ok := w.pure[d]; ok {
		return r
	}
	w.pure[d] = false // also what a cycle back to d finds
	if d.Len() == 0 || depth > maxWalkDepth {
		return false
	}
	for _, v := range d.Values {
		switch x := v.(type) {
		case *Tensor:
		case *Dict:
			if !w.onlyTensors(x, depth+1) {
				return false
			}
		default:
			return false
		}
	}
	w.pure[d] = true
	return true
}
