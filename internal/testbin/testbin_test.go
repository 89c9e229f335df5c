package testbin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuild(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("ModuleRoot %s has no go.mod: %v", root, err)
	}
	dir := t.TempDir()
	bins, err := Build(dir, Target{Name: "collector", Pkg: "./cmd/collector"})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(bins["collector"]); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("built %q: %v", bins["collector"], err)
	}
	_, err = Build(dir, Target{Name: "nothing", Pkg: "./cmd/no-such-command"})
	if err == nil || !strings.Contains(err.Error(), "no-such-command") {
		t.Fatalf("building a missing package: %v, want the go command's complaint", err)
	}
}
