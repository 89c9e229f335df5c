// Package testbin builds the repository's commands for the tests that run
// them as processes (e2e, faults). Only tests import it.
package testbin

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Target is one binary to build: Pkg (a package path, "./cmd/…" relative to
// the module root) built with Flags into a file called Name.
type Target struct {
	Name  string
	Pkg   string
	Flags []string
}

// Build builds every target into dir, from the module's root, and returns
// the binaries' paths by name. The first failure is returned with the
// compiler's output.
func Build(dir string, targets ...Target) (map[string]string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	bins := make(map[string]string, len(targets))
	for _, t := range targets {
		out := filepath.Join(dir, t.Name)
		args := append(append([]string{"build"}, t.Flags...), "-o", out, t.Pkg)
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if msg, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, msg)
		}
		bins[t.Name] = out
	}
	return bins, nil
}

// ModuleRoot is the folder of the go.mod the calling test belongs to.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod), nil
}
