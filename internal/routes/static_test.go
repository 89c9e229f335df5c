package routes

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/huntress"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadStatic(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "soc.token", "  "+testToken+"\n")
	yamlList := `
- name: ezssh-soc
  hec_url: https://hec.huntress.io/services/collector
  hec_token_file: soc.token
  admin_emails: [soc@ezssh.example]
- name: acme-ssh
  filter: ezssh.audit.acme.ssh
  hec_url: http://10.0.0.5:8088
  hec_token: ` + testToken + `
  auth_scheme: Bearer
  allow_insecure_http: true
`
	yamlObject := "routes:\n" + strings.ReplaceAll(yamlList, "\n", "\n  ")
	jsonList := `[{"name":"ezssh-soc","hec_url":"https://hec.huntress.io/services/collector","hec_token_file":"soc.token","admin_emails":["soc@ezssh.example"]},
	{"name":"acme-ssh","filter":"ezssh.audit.acme.ssh","hec_url":"http://10.0.0.5:8088","hec_token":"` + testToken + `","auth_scheme":"Bearer","allow_insecure_http":true}]`
	for name, content := range map[string]string{
		"routes.yaml":   yamlList,
		"object.yml":    yamlObject,
		"routes.json":   jsonList,
		"object.json":   `{"routes":` + jsonList + `}`,
		"json-noext":    jsonList,
		"yaml-noext":    yamlList,
		"routes.conf":   yamlObject,
		"sniffed.other": "\n  " + jsonList,
	} {
		t.Run(name, func(t *testing.T) {
			rs, err := ReadStatic(writeFile(t, dir, name, content))
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) != 2 {
				t.Fatalf("got %d routes", len(rs))
			}
			soc, acme := rs[0], rs[1]
			if soc.Name != "ezssh-soc" || soc.Filter != audit.SubjectAll || soc.HECToken != testToken || len(soc.AdminEmails) != 1 {
				t.Fatalf("first route %v", soc)
			}
			if acme.Filter != "ezssh.audit.acme.ssh" || !acme.AllowInsecureHTTP || acme.AuthScheme != "Bearer" || acme.HECToken != testToken {
				t.Fatalf("second route %v", acme)
			}
			cfg, err := acme.HECConfig(nil, huntress.Config{})
			if err != nil || cfg.Token != testToken || cfg.AuthScheme != huntress.SchemeBearer || !cfg.AllowInsecureHTTP {
				t.Fatalf("HECConfig = %v, %v", cfg, err)
			}
		})
	}
	for name, content := range map[string]string{"empty.yaml": "", "empty.json": "[]", "none.yaml": "routes: []\n"} {
		rs, err := ReadStatic(writeFile(t, dir, name, content))
		if err != nil || len(rs) != 0 {
			t.Fatalf("%s: %v, %v", name, rs, err)
		}
	}
}

func TestReadStaticErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "empty.token", "\n")
	for _, tc := range []struct {
		name, content string
		want          []string // substrings of the error
	}{
		{"bad.yaml", "- name: a\n  hec_url: http://hec.example.com\n  hec_token: " + testToken + "\n",
			[]string{`route #1 "a": hec_url:`, "allow_insecure_http"}},
		{"noname.yaml", "- hec_url: https://h.example.com\n  hec_token: x\n", []string{"route #1: name: is empty"}},
		{"badname.yaml", "- name: a.b\n  hec_url: https://h.example.com\n  hec_token: x\n", []string{`route #1 "a.b": name:`}},
		{"dup.yaml", "- {name: a, hec_url: 'https://h.example.com', hec_token: x}\n- {name: a, hec_url: 'https://h.example.com', hec_token: x}\n",
			[]string{`route #2 "a": name: also used by route #1`}},
		{"filter.yaml", "- {name: a, filter: 'ezssh.dlq.>', hec_url: 'https://h.example.com', hec_token: x}\n", []string{`"a": filter:`}},
		{"filter2.yaml", "- {name: a, filter: 'ezssh.audit.>.x', hec_url: 'https://h.example.com', hec_token: x}\n", []string{`"a": filter:`}},
		{"both.yaml", "- {name: a, hec_url: 'https://h.example.com', hec_token: " + testToken + ", hec_token_file: empty.token}\n",
			[]string{`"a": hec_token: give either`}},
		{"notoken.yaml", "- {name: a, hec_url: 'https://h.example.com'}\n", []string{`"a": hec_token: is empty`}},
		{"emptyfile.yaml", "- {name: a, hec_url: 'https://h.example.com', hec_token_file: empty.token}\n", []string{`"a": hec_token_file:`, "is empty"}},
		{"missingfile.yaml", "- {name: a, hec_url: 'https://h.example.com', hec_token_file: nope.token}\n", []string{`"a": hec_token_file:`}},
		{"email.json", `[{"name":"a","hec_url":"https://h.example.com","hec_token":"` + testToken + `","admin_emails":["nope"]}]`, []string{`"a": admin_emails:`}},
		{"scheme.json", `[{"name":"a","hec_url":"https://h.example.com","hec_token":"x","auth_scheme":"Basic"}]`, []string{`"a": auth_scheme:`}},
		{"unknown.yaml", "- {name: a, hec_urll: 'https://h.example.com', hec_token: x}\n", []string{"hec_urll"}},
		{"unknown.json", `[{"name":"a","hec_urll":"https://h.example.com","hec_token":"x"}]`, []string{"hec_urll"}},
		{"type.yaml", "- {name: a, hec_url: 'https://h.example.com', allow_insecure_http: " + testToken + "}\n", []string{"bool"}},
		{"type.json", `[{"name":"a","hec_url":"https://h.example.com","allow_insecure_http":"` + testToken + `"}]`, []string{"allow_insecure_http"}},
		{"syntax.json", `[{"name":"a","hec_token":"` + testToken + `"`, []string{"JSON"}},
		{"syntax.yaml", "- name: [a\n  hec_token: " + testToken + "\n", []string{"YAML"}},
		{"several.yaml", "- {name: a, hec_url: 'ftp://x', hec_token: x}\n- {name: b, hec_url: 'https://h.example.com', hec_token: x, auth_scheme: y}\n",
			[]string{`route #1 "a": hec_url`, `route #2 "b": auth_scheme`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, dir, tc.name, tc.content)
			_, err := ReadStatic(p)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v; want ErrInvalid", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, p) {
				t.Errorf("%q does not name the file", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, testToken) {
				t.Errorf("the error holds the token: %q", msg)
			}
		})
	}
	if _, err := ReadStatic(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("a missing file is no error")
	}
}

func TestStaticSealedToken(t *testing.T) {
	key := testKey(5)
	sealed, _ := Seal(key, testToken)
	r := StaticRoute{Name: "soc", Filter: audit.SubjectAll, HECURL: "https://h.example.com", HECToken: sealed}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg, err := r.HECConfig(key, huntress.Config{}); err != nil || cfg.Token != testToken {
		t.Fatalf("HECConfig = %v, %v", cfg, err)
	}
	if _, err := r.HECConfig(nil, huntress.Config{}); !errors.Is(err, ErrNoKey) || !strings.Contains(err.Error(), "route soc") {
		t.Fatalf("no key: %v", err)
	}
	if s := r.String(); strings.Contains(s, sealed) {
		t.Fatalf("String shows the sealed value: %s", s)
	}
}
