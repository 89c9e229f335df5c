package main

import (
	"bytes"
	"go/parser"
	"go/token"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"go.yaml.in/yaml/v3"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/cliflag"
)

// No container engine runs in CI (.ci/run only checks docker-compose.yml's
// syntax with docker-compose config), so these tests hold the deployment
// files to what makes them work: docker-compose.yml, deploy/nats.conf,
// Dockerfile and .dockerignore at the repository root.

const deployRoot = "../.."

// composeFile is the part of docker-compose.yml the tests look at.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image         string            `yaml:"image"`
	ContainerName string            `yaml:"container_name"`
	Command       []string          `yaml:"command"`
	Environment   map[string]string `yaml:"environment"`
	Ports         []string          `yaml:"ports"`
	Volumes       []string          `yaml:"volumes"`
	Deploy        struct {
		Replicas int `yaml:"replicas"`
	} `yaml:"deploy"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployRoot, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, name := range []string{"nats", "forwarder", "producer", "collector", "mailpit"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("docker-compose.yml has no service %q", name)
		}
	}
	return c
}

var composeVar = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::?-([^}]*))?\}`)

// composeDefault is v with every ${VAR:-default} replaced by its default: the
// value docker compose uses when the variable is not set.
func composeDefault(v string) string {
	return composeVar.ReplaceAllString(v, "$2")
}

// composePort splits a short-syntax port ("8080", "127.0.0.1::8080",
// "127.0.0.1:4222:4222/tcp") into its host and container ports.
func composePort(spec string) (host, container string) {
	spec, _, _ = strings.Cut(spec, "/")
	parts := strings.Split(spec, ":")
	container = parts[len(parts)-1]
	if len(parts) >= 2 {
		host = parts[len(parts)-2]
	}
	return host, container
}

// runEnvNames returns the environment variables of `forwarder run`'s flags.
func runEnvNames(t *testing.T) map[string]bool {
	t.Helper()
	var f runFlags
	var help bytes.Buffer
	s := cliflag.New("forwarder run", "", &help)
	f.bind(s)
	s.PrintUsage()
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`\[\$([A-Z0-9_]+)\]`).FindAllStringSubmatch(help.String(), -1) {
		names[m[1]] = true
	}
	if len(names) < 20 {
		t.Fatalf("forwarder run lists %d environment variables; the test's parser is out of date:\n%s", len(names), help.String())
	}
	return names
}

// TestDockerComposeForwarder checks the forwarder service: three replicas
// that nothing stops from running side by side, only settings the forwarder
// knows, and defaults it accepts that point at the compose file's own NATS,
// collector and Mailpit.
func TestDockerComposeForwarder(t *testing.T) {
	c := loadCompose(t)
	fw := c.Services["forwarder"]

	t.Run("replicas", func(t *testing.T) {
		if fw.Deploy.Replicas != 3 {
			t.Errorf("deploy.replicas = %d, want 3", fw.Deploy.Replicas)
		}
		if fw.ContainerName != "" {
			t.Errorf("container_name %q: replicas need generated names", fw.ContainerName)
		}
		for _, p := range fw.Ports {
			if host, _ := composePort(p); host != "" {
				t.Errorf("port %q fixes host port %s: the second replica could not bind it", p, host)
			}
		}
	})

	t.Run("environment names are flags", func(t *testing.T) {
		known := runEnvNames(t)
		for name := range fw.Environment {
			if !known[name] {
				t.Errorf("environment %s is not a variable of forwarder run (a typo is silently ignored)", name)
			}
		}
	})

	t.Run("defaults", func(t *testing.T) {
		env := map[string]string{}
		for k, v := range fw.Environment {
			env[k] = composeDefault(v)
			t.Setenv(k, env[k])
		}
		var f runFlags
		s := cliflag.New("forwarder run", "", io.Discard)
		f.bind(s)
		if err := s.Parse(nil); err != nil {
			t.Fatal(err)
		}
		if err := f.validate(); err != nil {
			t.Errorf("forwarder run refuses the compose defaults: %v", err)
		}
		if _, err := f.hec.config(); err != nil {
			t.Error(err)
		}
		if _, ok, err := f.notify.smtpConfig(); !ok || err != nil {
			t.Errorf("admin email is not on (err %v): SMTP_URL should point at mailpit", err)
		}
		if admins, err := f.notify.admins(); len(admins) == 0 || err != nil {
			t.Errorf("FORWARDER_ADMIN_EMAILS gives no recipients (err %v)", err)
		}

		// Each default reaches the service that answers it.
		wantService(t, c, "NATS_URL", env["NATS_URL"], "nats", "4222")
		coll := c.Services["collector"].Environment
		_, collPort, err := net.SplitHostPort(composeDefault(coll["COLLECTOR_ADDR"]))
		if err != nil {
			t.Fatalf("collector COLLECTOR_ADDR: %v", err)
		}
		wantService(t, c, "HUNTRESS_HEC_URL", env["HUNTRESS_HEC_URL"], "collector", collPort)
		if got, want := env["HUNTRESS_HEC_TOKEN"], composeDefault(coll["COLLECTOR_TOKEN"]); got != want {
			t.Errorf("HUNTRESS_HEC_TOKEN defaults to %q, the collector requires %q", got, want)
		}
		wantService(t, c, "SMTP_URL", env["SMTP_URL"], "mailpit", "1025")

		_, httpPort, err := net.SplitHostPort(env["FORWARDER_HTTP_ADDR"])
		if err != nil {
			t.Fatalf("FORWARDER_HTTP_ADDR %q: %v", env["FORWARDER_HTTP_ADDR"], err)
		}
		published := false
		for _, p := range fw.Ports {
			if _, cp := composePort(p); cp == httpPort {
				published = true
			}
		}
		if !published {
			t.Errorf("FORWARDER_HTTP_ADDR port %s (/metrics) is not in the forwarder's ports %q", httpPort, fw.Ports)
		}
	})
}

// wantService checks that the URL raw names service and port.
func wantService(t *testing.T, c composeFile, name, raw, service, port string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Errorf("%s %q: %v", name, raw, err)
		return
	}
	if u.Hostname() != service || u.Port() != port {
		t.Errorf("%s %q should reach service %s on port %s", name, raw, service, port)
	}
	if _, ok := c.Services[u.Hostname()]; !ok {
		t.Errorf("%s %q names no service of docker-compose.yml", name, raw)
	}
}

// TestDockerComposeServices checks the services around the forwarder: NATS
// with its store on a named volume and the settings of the embedded server,
// Mailpit, and producer and collector settings those commands know.
func TestDockerComposeServices(t *testing.T) {
	c := loadCompose(t)

	t.Run("nats", func(t *testing.T) {
		n := c.Services["nats"]
		i := slices.Index(n.Command, "--config")
		if i < 0 || i+1 >= len(n.Command) {
			t.Fatalf("nats command %q gives no --config", n.Command)
		}
		mounts := map[string]string{} // target → source
		for _, v := range n.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) < 2 {
				t.Fatalf("nats volume %q has no target", v)
			}
			mounts[parts[1]] = parts[0]
		}
		src, ok := mounts[n.Command[i+1]]
		if !ok {
			t.Fatalf("nats config %s is not mounted (volumes %q)", n.Command[i+1], n.Volumes)
		}
		opts, err := server.ProcessConfigFile(filepath.Join(deployRoot, src))
		if err != nil {
			t.Fatalf("nats config %s: %v", src, err)
		}
		if !opts.JetStream || !opts.SyncAlways {
			t.Errorf("%s: jetstream %v, sync_interval always %v; want both (fsync before acknowledging, like the embedded server)", src, opts.JetStream, opts.SyncAlways)
		}
		if want := (audit.StreamOptions{}).Config().MaxMsgSize; opts.MaxPayload < want {
			t.Errorf("%s: max_payload %d is below the audit stream's max message size %d", src, opts.MaxPayload, want)
		}
		if opts.Port != 4222 {
			t.Errorf("%s: port %d, the forwarder and producer use 4222", src, opts.Port)
		}
		store := ""
		for target, source := range mounts {
			if _, named := c.Volumes[source]; named && (opts.StoreDir == target || strings.HasPrefix(opts.StoreDir, target+"/")) {
				store = source
			}
		}
		if store == "" {
			t.Errorf("the JetStream store %q is on no named volume (volumes %q): events would go with the container", opts.StoreDir, n.Volumes)
		}
		if hc := strings.Join(n.Healthcheck.Test, " "); !strings.Contains(hc, ":"+strconv.Itoa(opts.HTTPPort)+"/healthz") {
			t.Errorf("nats healthcheck %q does not ask /healthz on the monitoring port %d", hc, opts.HTTPPort)
		}

		// The server the compose file runs is the one the tests run against.
		gomod, err := os.ReadFile(filepath.Join(deployRoot, "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`github.com/nats-io/nats-server/v2 v(\d+\.\d+)\.`).FindSubmatch(gomod)
		if m == nil {
			t.Fatal("go.mod requires no nats-server")
		}
		if !strings.HasPrefix(n.Image, "nats:"+string(m[1])+"-") && n.Image != "nats:"+string(m[1]) {
			t.Errorf("nats image %q is not nats-server %s, which go.mod's tests run", n.Image, m[1])
		}
	})

	t.Run("mailpit", func(t *testing.T) {
		mp := c.Services["mailpit"]
		if !strings.HasPrefix(mp.Image, "axllent/mailpit") {
			t.Errorf("mailpit image %q", mp.Image)
		}
		ui := false
		for _, p := range mp.Ports {
			if _, cp := composePort(p); cp == "8025" {
				ui = true
			}
		}
		if !ui {
			t.Errorf("mailpit publishes no web UI (8025): ports %q", mp.Ports)
		}
	})

	// The producer and the collector are other commands; their variables
	// are looked for as string literals in their sources.
	for _, tc := range []struct {
		service string
		dirs    []string
	}{
		{"producer", []string{"cmd/producer", "internal/natsconn"}},
		{"collector", []string{"cmd/collector"}},
	} {
		t.Run(tc.service+" environment names", func(t *testing.T) {
			var src []byte
			for _, dir := range tc.dirs {
				files, _ := filepath.Glob(filepath.Join(deployRoot, dir, "*.go"))
				for _, f := range files {
					if strings.HasSuffix(f, "_test.go") {
						continue
					}
					b, err := os.ReadFile(f)
					if err != nil {
						t.Fatal(err)
					}
					src = append(src, b...)
				}
			}
			for name := range c.Services[tc.service].Environment {
				if !bytes.Contains(src, []byte(strconv.Quote(name))) {
					t.Errorf("environment %s is not a variable of %s (a typo is silently ignored)", name, tc.service)
				}
			}
		})
	}

	t.Run("commands are in the image", func(t *testing.T) {
		built := dockerfileBuilds(t)
		image := c.Services["forwarder"].Image
		for name, s := range c.Services {
			if s.Image != image {
				continue
			}
			if len(s.Command) == 0 || !built[s.Command[0]] {
				t.Errorf("service %s runs %q; the Dockerfile builds %v", name, s.Command, built)
			}
		}
	})
}

// dockerStage is one stage of a Dockerfile: its FROM and its instructions,
// continuation lines joined.
type dockerStage struct {
	from  string
	instr [][2]string // instruction (upper case), arguments
}

func loadDockerfile(t *testing.T) []dockerStage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var stages []dockerStage
	var line string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "#") || (l == "" && line == "") {
			continue
		}
		if cont, ok := strings.CutSuffix(l, `\`); ok {
			line += cont + " "
			continue
		}
		line += l
		op, args, _ := strings.Cut(line, " ")
		line = ""
		op = strings.ToUpper(op)
		if op == "FROM" {
			stages = append(stages, dockerStage{from: args})
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: %s before FROM", op)
		}
		stages[len(stages)-1].instr = append(stages[len(stages)-1].instr, [2]string{op, args})
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a builder and a final stage", len(stages))
	}
	return stages
}

// dockerfileBuilds returns the commands the Dockerfile's RUN lines build.
func dockerfileBuilds(t *testing.T) map[string]bool {
	t.Helper()
	built := map[string]bool{}
	for _, st := range loadDockerfile(t) {
		for _, in := range st.instr {
			if in[0] != "RUN" || !strings.Contains(in[1], "go build") {
				continue
			}
			for _, m := range regexp.MustCompile(`\./cmd/([a-z]+)`).FindAllStringSubmatch(in[1], -1) {
				built[m[1]] = true
			}
		}
	}
	return built
}

// TestDockerfile checks what docker build would only tell an engine: static
// binaries from the module's Go version, a final stage that does not run as
// root, and a build context that holds every package the commands import.
func TestDockerfile(t *testing.T) {
	stages := loadDockerfile(t)
	gomod, err := os.ReadFile(filepath.Join(deployRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if goVersion == nil {
		t.Fatal("go.mod has no go line")
	}

	t.Run("builder", func(t *testing.T) {
		if !strings.Contains(stages[0].from, "golang:"+string(goVersion[1])) {
			t.Errorf("builder FROM %q, want golang:%s (go.mod)", stages[0].from, goVersion[1])
		}
		built := dockerfileBuilds(t)
		for _, cmd := range []string{"forwarder", "producer", "collector"} {
			if !built[cmd] {
				t.Errorf("the Dockerfile does not build ./cmd/%s", cmd)
			}
		}
		var build string
		for _, in := range stages[0].instr {
			if in[0] == "RUN" && strings.Contains(in[1], "go build") {
				build = in[1]
			}
		}
		for _, want := range []string{"CGO_ENABLED=0", "-trimpath"} {
			if !strings.Contains(build, want) {
				t.Errorf("go build without %s: %q", want, build)
			}
		}
	})

	t.Run("final stage runs as non-root", func(t *testing.T) {
		final := stages[len(stages)-1]
		user := ""
		for _, in := range final.instr {
			if in[0] == "USER" {
				user = strings.TrimSpace(in[1])
			}
		}
		name, _, _ := strings.Cut(user, ":")
		if name == "" || name == "root" || name == "0" {
			t.Errorf("final stage (FROM %s) runs as %q; want a USER that is not root", final.from, user)
		}
	})

	t.Run("dockerignore keeps the sources", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(deployRoot, ".dockerignore"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		if !slices.Contains(lines, "*") {
			t.Fatal(".dockerignore does not start from nothing (*): the working copy's binaries and .git would be sent")
		}
		kept := func(p string) bool {
			return slices.Contains(lines, "!"+p) || slices.Contains(lines, "!"+p+"/")
		}
		for _, f := range []string{"go.mod", "go.sum"} {
			if !kept(f) {
				t.Errorf(".dockerignore leaves out %s", f)
			}
		}
		missing := map[string]string{} // top folder → a package in it
		for _, dir := range deployPackages(t, "cmd/forwarder", "cmd/producer", "cmd/collector") {
			if top, _, _ := strings.Cut(dir, "/"); !kept(top) {
				missing[top] = dir
			}
		}
		for top, dir := range missing {
			t.Errorf(".dockerignore leaves out %s/, which the image's commands import (%s)", top, dir)
		}
	})
}

// deployPackages returns the module's own packages the given ones import,
// directly or not, as directories relative to the module root.
func deployPackages(t *testing.T, roots ...string) []string {
	t.Helper()
	const module = "github.com/ezssh/siem-forwarder/"
	seen := map[string]bool{}
	queue := slices.Clone(roots)
	for len(queue) > 0 {
		dir := queue[0]
		queue = queue[1:]
		if seen[dir] {
			continue
		}
		seen[dir] = true
		files, _ := filepath.Glob(filepath.Join(deployRoot, dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if rel, ok := strings.CutPrefix(p, module); ok {
					queue = append(queue, path.Clean(rel))
				}
			}
		}
	}
	out := make([]string, 0, len(seen))
	for dir := range seen {
		out = append(out, dir)
	}
	slices.Sort(out)
	return out
}
