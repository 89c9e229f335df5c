package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/ezssh/siem-forwarder/internal/cliflag"
)

// parse parses args into s. It returns errHelpShown after --help, which the
// commands turn into success: asking for help is not a failure.
func parse(s *cliflag.Set, args []string) error {
	err := s.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return errHelpShown
	}
	if err == nil && len(s.Args()) > 0 {
		return cliflag.Usagef("unexpected argument %q (see --help)", s.Args()[0])
	}
	return err
}

var errHelpShown = errors.New("help shown")

// fieldFlags collects repeated --field key=value flags in order.
type fieldFlags []string

func (f *fieldFlags) String() string { return strings.Join(*f, ",") }

func (f *fieldFlags) Set(v string) error {
	if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", v)
	}
	*f = append(*f, v)
	return nil
}
