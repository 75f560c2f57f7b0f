// Command ddgi turns a text prompt plus a face mask or scribble into a face
// image (2D or 3D-aware) by diffusion-driven GAN inversion. Each subcommand
// lives in its own file and registers itself in init.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
)

// Version is the ddgi release; set with -ldflags "-X main.Version=…".
var Version = "0.1.0-dev"

// command is one `ddgi <name>` subcommand.
type command struct {
	name    string
	summary string
	// run parses args (without the subcommand name) and does the work.
	run func(args []string) error
}

var commands = map[string]command{}

func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("ddgi: duplicate command " + c.name)
	}
	commands[c.name] = c
}

// errUsage marks an error whose message is already printed by flag parsing.
var errUsage = errors.New("usage")

// newFlags returns a FlagSet whose -h prints a summary line then the flags.
func newFlags(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("ddgi "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ddgi %s %s\n\nflags:\n", name, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, mapping -h and bad flags to errUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return errUsage
	}
	return nil
}

func usage() {
	fmt.Fprintf(os.Stderr, "ddgi %s — diffusion-driven GAN inversion for multi-modal face generation\n\nusage: ddgi <command> [flags]\n\ncommands:\n", Version)
	for _, n := range sortedNames() {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun 'ddgi <command> -h' for a command's flags.\n")
}

func main() {
	// Keep every torch call on one OS thread: OpenMP keeps a warm thread
	// team per calling thread, and libtorch's grad mode is per thread.
	runtime.LockOSThread()
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "-version" || args[0] == "--version" {
		args[0] = "version"
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "ddgi: unknown command %q (known: %s)\n", args[0], strings.Join(sortedNames(), ", "))
		return 2
	}
	if err := c.run(args[1:]); err != nil {
		switch {
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		}
		fmt.Fprintf(os.Stderr, "ddgi %s: %v\n", c.name, err)
		return 1
	}
	return 0
}

func sortedNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// flagSet reports whether the named flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
