// Package convert turns public checkpoints (rosinality's and NVlabs'
// StyleGAN2, NVlabs' EG3D, …) into ddgi safetensors. Each foreign layout is
// one Table of rename rules, applied by Apply, which checks every key and
// shape and names what it could not place; models never see foreign names.
// Foreign files are read by the torchfile package, which runs no code.
package convert

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"ddgi/safetensors"
)

// Source is one tensor of a foreign checkpoint, read only when needed.
type Source interface {
	Shape() []int64
	Read() (safetensors.Tensor, error)
}

// Rule renames the foreign tensors whose whole name matches From.
type Rule struct {
	From *regexp.Regexp
	// To builds the ddgi name from From's submatches (m[0] is the whole
	// name); "" drops the tensor (fixed FIR filters, optimiser state, …).
	To func(m []string) string
	// Reshape lets the tensor take the target's shape when the two differ
	// only by dimensions of size 1 (rosinality's [1,O,I,k,k] conv weights).
	Reshape bool
}

// Table is the rename rules of one layout; the first matching rule wins.
type Table struct {
	Name  string
	Rules []Rule
}

// rule is a Rule from a pattern (anchored) and a "$1"-style template; an
// empty template drops the tensor.
func rule(from, to string, reshape bool) Rule {
	re := regexp.MustCompile("^(?:" + from + ")$")
	r := Rule{From: re, Reshape: reshape}
	r.To = func(m []string) string {
		if to == "" {
			return ""
		}
		return string(re.ExpandString(nil, to, m[0], re.FindStringSubmatchIndex(m[0])))
	}
	return r
}

// drop is a rule that discards the tensors matching from.
func drop(from string) Rule { return rule(from, "", false) }

// Apply renames src by t onto the ddgi network whose tensor shapes are want
// (name → shape) and reads each kept tensor once (see Plan for the checks).
func Apply(t Table, src map[string]Source, want map[string][]int64) (map[string]safetensors.Tensor, error) {
	target, err := t.Plan(shapesOf(src), want)
	if err != nil {
		return nil, err
	}
	out := make(map[string]safetensors.Tensor, len(target))
	for to, from := range target {
		x, err := src[from].Read()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", from, err)
		}
		x.Shape = append([]int64(nil), want[to]...) // Plan allowed only size-1 differences
		if err := x.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", from, err)
		}
		out[to] = x
	}
	return out, nil
}

// Plan maps foreign tensor names (with their shapes) onto ddgi's names and
// returns ddgi name → foreign name. Every foreign name must match a rule,
// every ddgi name must be produced exactly once, and shapes must agree (up
// to size-1 dimensions where the rule allows): otherwise the error lists
// every unknown, missing, duplicated or mis-shaped key.
func (t Table) Plan(src, want map[string][]int64) (map[string]string, error) {
	var unknown, unexpected, clash, badShape []string
	target := map[string]string{} // ddgi name → foreign name
	for _, name := range sortedKeys(src) {
		r, m := t.match(name)
		if m == nil {
			unknown = append(unknown, name)
			continue
		}
		to := r.To(m)
		if to == "" {
			continue
		}
		shape, ok := want[to]
		switch {
		case !ok:
			unexpected = append(unexpected, fmt.Sprintf("%s → %s", name, to))
			continue
		case target[to] != "":
			clash = append(clash, fmt.Sprintf("%s and %s → %s", target[to], name, to))
			continue
		}
		got := src[name]
		if !slices.Equal(got, shape) && !(r.Reshape && sameSqueezed(got, shape)) {
			badShape = append(badShape, fmt.Sprintf("%s %v → %s %v", name, got, to, shape))
		}
		target[to] = name
	}
	var missing []string
	for name := range want {
		if target[name] == "" {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	var problems []string
	for _, p := range []struct {
		what  string
		names []string
	}{
		{"foreign tensors no rule places", unknown},
		{"renamed to names the network lacks", unexpected},
		{"placed twice", clash},
		{"shapes that do not fit", badShape},
		{"network tensors the file lacks", missing},
	} {
		if len(p.names) > 0 {
			problems = append(problems, fmt.Sprintf("%d %s: %s", len(p.names), p.what, list(p.names)))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s layout: %s", t.Name, strings.Join(problems, "; "))
	}
	return target, nil
}

func (t Table) match(name string) (Rule, []string) {
	for _, r := range t.Rules {
		if m := r.From.FindStringSubmatch(name); m != nil {
			return r, m
		}
	}
	return Rule{}, nil
}

// list shows up to 8 names, then a count.
func list(names []string) string {
	if len(names) > 8 {
		return strings.Join(names[:8], ", ") + fmt.Sprintf(", … (%d more)", len(names)-8)
	}
	return strings.Join(names, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// sameSqueezed compares shapes with their size-1 dimensions removed.
func sameSqueezed(a, b []int64) bool { return slices.Equal(squeeze(a), squeeze(b)) }

func squeeze(s []int64) []int64 {
	var out []int64
	for _, d := range s {
		if d != 1 {
			out = append(out, d)
		}
	}
	return out
}

// atoi parses a submatch the pattern guarantees to be digits.
func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic("convert: rule pattern let a non-number through: " + s)
	}
	return n
}
