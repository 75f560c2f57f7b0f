package inversion

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"ddgi/synthface"
)

// A counterfactual prompt states exactly one of the changes against the
// truth, in terms the caption parser (the critic's targets) reads, and
// keeps the person's gender and hair colour.
func TestCounterfactualPromptStatesTheOppositeOfTheTruth(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	k := len(synthface.AttributeNames)
	for n := 0; n < 200; n++ {
		attrs := make([]float32, k)
		for i := range attrs {
			if r.IntN(2) == 1 {
				attrs[i] = 1
			}
		}
		p := synthface.PersonOf(attrs)
		s := CounterfactualPrompt(attrs, r.Uint64())
		against := 0
		for _, m := range synthface.CaptionAttributes(s) {
			truth := attrs[m.Index] > 0.5
			switch synthface.AttributeNames[m.Index] {
			case "Smiling", "Young", "Heavy_Makeup", "Wearing_Lipstick":
				if m.Value != truth {
					against++
				}
			case "Male":
				if m.Value != truth {
					t.Fatalf("%q changes the gender of %+v", s, p)
				}
			}
		}
		if against != 1 {
			t.Fatalf("%q states %d attributes against the truth, want 1 (%+v)", s, against, p)
		}
		if p.Hair != "" && !strings.Contains(s, p.Hair) {
			t.Fatalf("%q lost the hair colour %q", s, p.Hair)
		}
	}
}

// The rows swapped are drawn per step for the whole batch, so two ranks
// holding halves of it swap exactly what one process would; share 0 keeps
// every caption and share 1 none; rows without attributes keep theirs.
func TestSwapPromptsSameOnEveryRank(t *testing.T) {
	k := len(synthface.AttributeNames)
	caps := make([]string, 8)
	attrs := make([][]float32, 8)
	for i := range caps {
		caps[i] = "caption"
		attrs[i] = make([]float32, k)
	}
	if got := swapPrompts(caps, attrs, 0, 1, 5, 8, 0); !reflect.DeepEqual(got, caps) {
		t.Fatal("share 0 changed captions")
	}
	all := swapPrompts(caps, attrs, 1, 1, 5, 8, 0)
	for i, c := range all {
		if c == "caption" {
			t.Fatalf("share 1 kept row %d", i)
		}
	}
	one := swapPrompts(caps, attrs, 0.5, 3, 7, 8, 0)
	two := append(swapPrompts(caps[:4], attrs[:4], 0.5, 3, 7, 8, 0), swapPrompts(caps[4:], attrs[4:], 0.5, 3, 7, 8, 4)...)
	if !reflect.DeepEqual(one, two) {
		t.Fatalf("ranks disagree:\n%q\n%q", one, two)
	}
	if reflect.DeepEqual(one, caps) || reflect.DeepEqual(one, all) {
		t.Fatalf("share 0.5 swapped all or none of 8 rows: %q", one)
	}
	attrs[2] = nil
	if got := swapPrompts(caps, attrs, 1, 1, 5, 8, 0); got[2] != "caption" {
		t.Fatalf("a row without attributes got %q", got[2])
	}
}
