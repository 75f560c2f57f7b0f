package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
)

// A group is a command whose first argument picks a target: `ddgi train gan`,
// `ddgi sample gan`. Targets register from their own files.
var groups = map[string]map[string]command{}

var groupSummaries = map[string]string{
	"train":  "train a network (gan, diffusion, aux, inversion); resumable",
	"sample": "sample images from a trained network (gan, …)",
}

func registerIn(group string, c command) {
	g, ok := groups[group]
	if !ok {
		g = map[string]command{}
		groups[group] = g
		register(command{name: group, summary: groupSummaries[group], run: func(args []string) error { return runGroup(group, args) }})
	}
	if _, dup := g[c.name]; dup {
		panic("ddgi: duplicate " + group + " target " + c.name)
	}
	g[c.name] = c
}

func runGroup(group string, args []string) error {
	g := groups[group]
	names := make([]string, 0, len(g))
	for n := range g {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		w := os.Stdout // asked for
		if len(args) == 0 {
			w = os.Stderr
		}
		fmt.Fprintf(w, "usage: ddgi %s <target> [flags]\n\ntargets:\n", group)
		for _, n := range names {
			fmt.Fprintf(w, "  %-10s %s\n", n, g[n].summary)
		}
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	c, ok := g[args[0]]
	if !ok {
		return fmt.Errorf("unknown target %q (known: %s)", args[0], strings.Join(names, ", "))
	}
	return c.run(args[1:])
}
