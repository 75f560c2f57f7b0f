package synthface

import "strings"

// Person is the part of a face that prompts built from its attributes keep
// fixed: the controllability report (ddgi eval --controls) and the
// inversion's counterfactual prompts change one attribute and describe the
// rest as the truth has it.
type Person struct {
	Noun string // "man" or "woman"
	Age  string // "young" or "older"
	Hair string // "blond hair", … or "" (bald or no colour)
}

// HasAttribute says whether a face's attributes (AttributeNames order)
// have the named one on (> 0.5). An unknown name is a programming error.
func HasAttribute(attrs []float32, name string) bool {
	i := AttributeIndex(name)
	if i < 0 {
		panic("synthface: unknown attribute " + name)
	}
	return i < len(attrs) && attrs[i] > 0.5
}

// PersonOf reads a face's attributes (AttributeNames order, > 0.5 = on).
func PersonOf(attrs []float32) Person {
	on := func(name string) bool { return HasAttribute(attrs, name) }
	p := Person{Noun: "woman", Age: "older"}
	if on("Male") {
		p.Noun = "man"
	}
	if on("Young") {
		p.Age = "young"
	}
	if !on("Bald") {
		for _, c := range []struct{ attr, word string }{{"Black_Hair", "black"}, {"Blond_Hair", "blond"},
			{"Brown_Hair", "brown"}, {"Gray_Hair", "gray"}, {"Red_Hair", "red"}} {
			if on(c.attr) {
				p.Hair = c.word + " hair"
				break
			}
		}
	}
	return p
}

// Describe writes a prompt in SynthFace's noun-phrase caption form:
// "A smiling young woman with blond hair and eyeglasses."
func Describe(adjs []string, noun string, with []string) string {
	words := strings.Join(append(append([]string{}, adjs...), noun), " ")
	art := "A"
	if strings.ContainsRune("aeiou", rune(words[0])) {
		art = "An"
	}
	s := art + " " + words
	var w []string
	for _, x := range with {
		if x != "" {
			w = append(w, x)
		}
	}
	switch len(w) {
	case 0:
	case 1:
		s += " with " + w[0]
	default:
		s += " with " + strings.Join(w[:len(w)-1], ", ") + " and " + w[len(w)-1]
	}
	return s + "."
}

// Base is the person's plain description: age, noun and hair colour.
func (p Person) Base() string { return Describe([]string{p.Age}, p.Noun, []string{p.Hair}) }
