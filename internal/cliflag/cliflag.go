// Package cliflag binds command-line flags to environment variables.
//
// Every flag of the forwarder and the producer has an environment variable; a
// flag given on the command line wins over its variable, and the variable wins
// over the documented default. Values read from the environment are never
// printed by --help, so a token in the environment cannot leak through usage
// text.
package cliflag

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// UsageError is returned for a bad flag, argument or environment variable. The
// commands exit with status 2 for it.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef returns a *UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// IsUsage reports whether err is a usage error (exit status 2).
func IsUsage(err error) bool {
	var u *UsageError
	return errors.As(err, &u) || errors.Is(err, flag.ErrHelp)
}

// Set is a flag set whose flags may also come from environment variables.
// It is not safe for concurrent use.
type Set struct {
	fs    *flag.FlagSet
	env   map[string]string // flag name → environment variable
	intro string
	out   io.Writer
}

// New returns a Set for the command name; intro is printed above the flags by
// --help.
func New(name, intro string, out io.Writer) *Set {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	s := &Set{fs: fs, env: map[string]string{}, intro: intro, out: out}
	return s
}

// FlagSet returns the underlying flag set.
func (s *Set) FlagSet() *flag.FlagSet { return s.fs }

func (s *Set) bind(name, env string) {
	if env != "" {
		s.env[name] = env
	}
}

// String defines a string flag bound to env ("" for none).
func (s *Set) String(p *string, name, env, def, usage string) {
	s.fs.StringVar(p, name, def, usage)
	s.bind(name, env)
}

// Int defines an int flag bound to env.
func (s *Set) Int(p *int, name, env string, def int, usage string) {
	s.fs.IntVar(p, name, def, usage)
	s.bind(name, env)
}

// Int64 defines an int64 flag bound to env.
func (s *Set) Int64(p *int64, name, env string, def int64, usage string) {
	s.fs.Int64Var(p, name, def, usage)
	s.bind(name, env)
}

// Float defines a float64 flag bound to env.
func (s *Set) Float(p *float64, name, env string, def float64, usage string) {
	s.fs.Float64Var(p, name, def, usage)
	s.bind(name, env)
}

// Bool defines a bool flag bound to env.
func (s *Set) Bool(p *bool, name, env string, def bool, usage string) {
	s.fs.BoolVar(p, name, def, usage)
	s.bind(name, env)
}

// Duration defines a duration flag bound to env.
func (s *Set) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	s.fs.DurationVar(p, name, def, usage)
	s.bind(name, env)
}

// Parse applies the environment, then the arguments. A value that does not
// parse is a *UsageError naming the flag or variable; -h/--help prints the
// usage and returns flag.ErrHelp.
func (s *Set) Parse(args []string) error {
	names := make([]string, 0, len(s.env))
	for n := range s.env {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		env := s.env[name]
		v, ok := os.LookupEnv(env)
		if !ok || (v == "" && !isStringFlag(s.fs.Lookup(name))) {
			// An empty variable sets a string flag to empty (as documented
			// for flags where empty disables something); for numbers,
			// durations and booleans it means unset.
			continue
		}
		if err := s.fs.Set(name, v); err != nil {
			return Usagef("environment variable %s=%q is not valid for --%s: %v", env, redact(name, v), name, unwrapParse(err))
		}
	}
	if err := s.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			s.PrintUsage()
			return err
		}
		return Usagef("%v (see --help)", err)
	}
	return nil
}

// Args returns the arguments left after the flags.
func (s *Set) Args() []string { return s.fs.Args() }

// PrintUsage writes the intro and every flag with its variable and default.
func (s *Set) PrintUsage() {
	w := s.out
	if s.intro != "" {
		fmt.Fprintln(w, strings.TrimRight(s.intro, "\n"))
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "Flags (each can also be set by the environment variable shown):")
	s.fs.VisitAll(func(f *flag.Flag) {
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		line := "  " + dash + f.Name
		if env := s.env[f.Name]; env != "" {
			line += "  [$" + env + "]"
		}
		fmt.Fprintln(w, line)
		usage := f.Usage
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "0s" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "        %s\n", usage)
	})
}

func isStringFlag(f *flag.Flag) bool {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return false
	}
	_, isString := g.Get().(string)
	return isString
}

func unwrapParse(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}

// redact hides values of flags whose names suggest a secret.
func redact(name, v string) string {
	for _, s := range []string{"token", "password", "secret", "key", "creds"} {
		if strings.Contains(name, s) {
			return "<redacted>"
		}
	}
	return v
}
