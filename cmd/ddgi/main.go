// Command ddgi turns a text prompt plus a face mask or scribble into a face
// image (2D or 3D-aware) by diffusion-driven GAN inversion. Each subcommand
// lives in its own file and registers itself in init.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"ddgi/data"
	"ddgi/internal/cpuload"
	"ddgi/internal/progress"
	"ddgi/torch"
	"ddgi/train"
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

// quietFlag is every command's --quiet (see newFlags).
var quietFlag bool

// newFlags returns a FlagSet whose -h prints a summary line then the
// flags. Every command gets --quiet: progress lines show only on a
// terminal, and --quiet silences them there too.
func newFlags(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("ddgi "+name, flag.ContinueOnError)
	fs.BoolVar(&quietFlag, "quiet", false, "no progress lines (without it they show only when stderr is a terminal)")
	fs.SetOutput(io.Discard) // parseFlags prints: help on stdout, errors on stderr
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ddgi %s %s\n\nflags:\n", name, usage)
		printFlags(fs)
		printExamples(fs.Output(), name)
	}
	return fs
}

// printFlags lists fs's flags one line each: name, value type, usage and
// the default where it is not the zero value and the usage does not
// already say it (flag.PrintDefaults takes two lines a flag). A
// back-quoted phrase in a usage is quoted text, not the value's name.
func printFlags(fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		if strings.Contains(typ, " ") {
			typ, _ = flag.UnquoteUsage(&flag.Flag{Value: f.Value})
		}
		head := "-" + f.Name
		if typ != "" {
			head += " " + typ
		}
		def := ""
		switch {
		case f.DefValue == "" || f.DefValue == "0" || f.DefValue == "false" || strings.Contains(usage, "(default"):
		case typ == "string":
			def = fmt.Sprintf(" (default %q)", f.DefValue)
		default:
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(fs.Output(), "  %-22s %s%s\n", head, usage, def)
	})
}

// parseFlags parses args. Asked-for help goes to stdout (as Go's tools do:
// `ddgi generate -h | less` works) and returns flag.ErrHelp; a bad flag
// prints the error and the usage on stderr and returns errUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == nil {
		err = finiteFlags(fs)
	}
	switch {
	case err == nil:
		progress.Quiet = quietFlag
		return nil
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(os.Stdout)
		fs.Usage()
		return flag.ErrHelp
	}
	fs.SetOutput(os.Stderr)
	fmt.Fprintln(os.Stderr, err)
	fs.Usage()
	return errUsage
}

// finiteFlags refuses NaN and ±Inf in every float flag given: Go's flag
// package accepts them, and a NaN guidance or learning rate would run to
// the end and write black images or NaN weights.
func finiteFlags(fs *flag.FlagSet) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		g, ok := f.Value.(flag.Getter)
		if !ok || err != nil {
			return
		}
		if v, ok := g.Get().(float64); ok && (math.IsNaN(v) || math.IsInf(v, 0)) {
			err = fmt.Errorf("-%s %s: want a finite number", f.Name, f.Value)
		}
	})
	return err
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "ddgi %s — diffusion-driven GAN inversion for multi-modal face generation\n\nusage: ddgi <command> [flags]\n\ncommands:\n", Version)
	for _, n := range sortedNames() {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "\nRun 'ddgi help <command>' (or 'ddgi <command> -h') for a command's flags.\n")
}

func main() {
	limitOpenMPSpinning()
	// Keep every torch call on one OS thread: OpenMP keeps a warm thread
	// team per calling thread, and libtorch's grad mode is per thread.
	runtime.LockOSThread()
	adaptThreads()
	os.Exit(run(os.Args[1:]))
}

// adaptThreads lets the OpenMP team follow the free cores unless
// DDGI_THREADS fixes it (fixed counts give the same bits run after run;
// the team size changes the order of float sums). DDGI_DEBUG_THREADS=1
// prints each change.
func adaptThreads() {
	if os.Getenv("DDGI_THREADS") != "" {
		return
	}
	debug := os.Getenv("DDGI_DEBUG_THREADS") == "1"
	go cpuload.Adapt(context.Background(), runtime.NumCPU(), 100*time.Millisecond, func(n int) {
		torch.SetTeamThreads(n)
		if debug {
			fmt.Fprintf(os.Stderr, "ddgi: %d torch threads\n", n)
		}
	})
}

func run(args []string) int {
	switch {
	case len(args) == 0:
		usage(os.Stderr)
		return 2
	case args[0] == "-h" || args[0] == "--help" || (args[0] == "help" && len(args) == 1):
		usage(os.Stdout)
		return 0
	case args[0] == "help": // ddgi help generate, ddgi help train gan
		return run(append(append([]string(nil), args[1:]...), "-h"))
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
		return train.ExitCode(err) // 130/143 for a run stopped by a signal
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

// weightsDefaults points the file flags that default into weights/ and
// were not given at the model set modelSet finds (--weights when fs has
// it and it was given, else $DDGI_WEIGHTS, beside the binary, ./weights),
// so a command run from another folder finds the shipped files as
// generate does. With no model set it is an error only when one of the
// required flags was left to its default (others may name unused files).
func weightsDefaults(fs *flag.FlagSet, required ...string) error {
	var unset []*flag.Flag
	needed := false
	fs.VisitAll(func(f *flag.Flag) {
		if strings.HasPrefix(f.DefValue, "weights/") && !flagSet(fs, f.Name) {
			unset = append(unset, f)
			needed = needed || slices.Contains(required, f.Name)
		}
	})
	if len(unset) == 0 {
		return nil
	}
	set, err := modelSet(fs, "")
	if err != nil {
		if needed {
			return err
		}
		return nil
	}
	for _, f := range unset {
		if err := f.Value.Set(filepath.Join(set, strings.TrimPrefix(f.DefValue, "weights/"))); err != nil {
			return err
		}
	}
	return nil
}

// makeParents creates the folders output files go into (empty paths are
// skipped), as generate does for --out: a pasted command writing under
// /tmp/ddgi-out/ works on a fresh machine.
func makeParents(paths ...string) error {
	for _, p := range paths {
		if p == "" {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// refuseOverwrite is the --force check of commands that write one file:
// an existing regular file at out is kept unless force is set.
func refuseOverwrite(out string, force bool) error {
	if st, err := os.Stat(out); err == nil && !st.IsDir() && !force {
		return fmt.Errorf("%s exists; pass --force to overwrite it", out)
	}
	return nil
}

// flagSet reports whether the named flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// imageLimitFlags registers --max-image-mb and --max-image-side on a
// command that reads users' images; call the returned func after parsing.
func imageLimitFlags(fs *flag.FlagSet) func() error {
	mb := fs.Int64("max-image-mb", data.Limits.MaxBytes>>20, "largest decoded size of an input image in MiB (checked from its header: a one-colour PNG of a few hundred KB can claim gigabytes)")
	side := fs.Int("max-image-side", data.Limits.MaxSide, "largest width or height of an input image")
	return func() error {
		if *mb < 1 || *mb > 1<<20 || *side < 1 || *side > 1<<16 {
			return fmt.Errorf("--max-image-mb %d / --max-image-side %d: want 1…1048576 MiB and 1…65536 pixels", *mb, *side)
		}
		data.Limits = data.ImageLimits{MaxSide: *side, MaxBytes: *mb << 20}
		return nil
	}
}

// limitOpenMPSpinning restarts ddgi with GOMP_SPINCOUNT=10000 unless the
// user set it or OMP_WAIT_POLICY: libgomp reads them once, before main,
// and its default lets idle team threads spin for 300,000 iterations,
// which collapses throughput when another process shares the cores.
// Measured on the 2 cores with one single-thread job beside: bench/engine
// 1.62 → 11.36 steps/s, an EG3D-512 view 15.5 → 9.2 s; on a quiet machine
// 35.45 → 35.84 steps/s and 5.73 → 5.79 s. On failure ddgi runs as it is.
func limitOpenMPSpinning() {
	if os.Getenv("GOMP_SPINCOUNT") != "" || os.Getenv("OMP_WAIT_POLICY") != "" {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	env := append(os.Environ(), "GOMP_SPINCOUNT=10000")
	syscall.Exec(exe, os.Args, env) // returns only on failure
}

// modelSet resolves a command's --weights: the flag when given, else
// $DDGI_WEIGHTS, else weights/ beside the executable, else weights/ in the
// working directory. When none is a folder, the error names all four.
func modelSet(fs *flag.FlagSet, value string) (string, error) {
	if flagSet(fs, "weights") {
		if st, err := os.Stat(value); err != nil || !st.IsDir() {
			return "", fmt.Errorf("--weights %s: not a folder", value)
		}
		return value, nil
	}
	var tried []string
	try := func(dir string) bool {
		tried = append(tried, dir)
		st, err := os.Stat(dir)
		return err == nil && st.IsDir()
	}
	if env := os.Getenv("DDGI_WEIGHTS"); env != "" && try(env) {
		return env, nil
	}
	if exe, err := os.Executable(); err == nil {
		if dir := filepath.Join(filepath.Dir(exe), "weights"); try(dir) {
			return dir, nil
		}
	}
	if try("weights") {
		return "weights", nil
	}
	return "", fmt.Errorf("no model set found: give --weights DIR, or set DDGI_WEIGHTS, or keep weights/ beside the ddgi binary or in the working directory (looked in %s)", strings.Join(tried, ", "))
}
