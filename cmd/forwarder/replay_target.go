package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/huntress"
	"github.com/ezssh/siem-forwarder/internal/routes"
)

// replayTarget is the route a replay sends to, and the events it sends.
type replayTarget struct {
	kind   string // targetSubscription or targetRoute
	name   string // SubscriptionId or static route name ("global": HUNTRESS_HEC_URL)
	filter string // subject filter of the replayed events
}

const (
	targetSubscription = "subscription"
	targetRoute        = "route"
)

// String is the target as stored in the replay consumer's metadata:
// "subscription:SUB" or "route:NAME".
func (t replayTarget) String() string { return t.kind + ":" + t.name }

// describe names the target for people.
func (t replayTarget) describe() string {
	if t.kind == targetSubscription {
		return "the route of subscription " + t.name
	}
	return "route " + t.name
}

func parseReplayTarget(s, filter string) (replayTarget, error) {
	kind, name, _ := strings.Cut(s, ":")
	if (kind != targetSubscription && kind != targetRoute) || !audit.ValidSubjectToken(name) {
		return replayTarget{}, fmt.Errorf("bad target %q", s)
	}
	return replayTarget{kind: kind, name: name, filter: filter}, nil
}

// replaySubjects is the filter of --subscription and --type on their own:
// ezssh.audit.<SUB or *>.<kind or >>, or ezssh.audit.> with neither.
func replaySubjects(sub, kind string) string {
	if sub == "" && kind == "" {
		return audit.SubjectAll
	}
	if sub == "" {
		sub = "*"
	}
	if kind == "" {
		kind = ">"
	}
	return audit.SubjectPrefix + "." + sub + "." + kind
}

// intersectSubjects returns the filter matching exactly the subjects both a
// and b match; ok is false when no subject matches both.
func intersectSubjects(a, b string) (string, bool) {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	var out []string
	for i := 0; ; i++ {
		switch {
		case i == len(at) && i == len(bt):
			return strings.Join(out, "."), true
		case i == len(at) || i == len(bt):
			return "", false
		case at[i] == ">":
			return strings.Join(append(out, bt[i:]...), "."), true
		case bt[i] == ">":
			return strings.Join(append(out, at[i:]...), "."), true
		case at[i] == "*":
			out = append(out, bt[i])
		case bt[i] == "*", at[i] == bt[i]:
			out = append(out, at[i])
		default:
			return "", false
		}
	}
}

// target resolves --subscription, --route and --type to the route to send to
// and the events to send. It reads --routes-file but does not connect.
func (f *replayFlags) target() (replayTarget, error) {
	want := replaySubjects(f.subscription, f.kind)
	if f.route == "" && f.subscription != "" {
		return replayTarget{kind: targetSubscription, name: f.subscription, filter: want}, nil
	}
	name := f.route
	if name == "" {
		name = "global"
	}
	filter := audit.SubjectAll
	if name != "global" || f.hec.url == "" {
		r, err := f.staticRoute(name)
		if err != nil {
			return replayTarget{}, err
		}
		filter = r.Filter
	}
	got, ok := intersectSubjects(filter, want)
	if !ok {
		return replayTarget{}, cliflag.Usagef("route %s receives %s only: --subscription and --type select none of them", name, filter)
	}
	return replayTarget{kind: targetRoute, name: name, filter: got}, nil
}

// staticRoute finds a route of --routes-file by name. Without a file, or for
// the global route without HUNTRESS_HEC_URL, it says what to set.
func (f *replayFlags) staticRoute(name string) (*routes.StaticRoute, error) {
	if f.routesFile == "" {
		if name == "global" {
			_, err := f.hec.config() // the error says to set HUNTRESS_HEC_URL
			if err == nil {
				err = cliflag.Usagef("no global route: set HUNTRESS_HEC_URL")
			}
			return nil, err
		}
		return nil, cliflag.Usagef("--route %s: no --routes-file (FORWARDER_ROUTES_FILE) to find it in (the global route is --route global)", name)
	}
	static, err := routes.ReadStatic(f.routesFile)
	if err != nil {
		return nil, cliflag.Usagef("--routes-file (FORWARDER_ROUTES_FILE): %v", err)
	}
	var names []string
	for i := range static {
		if static[i].Name == name {
			return &static[i], nil
		}
		names = append(names, static[i].Name)
	}
	if name == "global" {
		return nil, cliflag.Usagef("no global route: set HUNTRESS_HEC_URL, or name a route of %s with --route (%s)", f.routesFile, strings.Join(names, ", "))
	}
	return nil, cliflag.Usagef("--route %s: no such route in %s (it has: %s; the global route is --route global)", name, f.routesFile, strings.Join(names, ", "))
}

// openSink builds the HEC client of the target: the subscription's entry in
// EZSSH_SIEM (its token opened with key), HUNTRESS_HEC_URL for the global
// route, or the static route. note gets remarks for the operator.
func (f *replayFlags) openSink(ctx context.Context, js jetstream.JetStream, t replayTarget, key []byte, note io.Writer) (*huntress.Client, error) {
	var (
		cfg huntress.Config
		err error
	)
	switch {
	case t.kind == targetSubscription:
		kv, kerr := routesBucket(ctx, js)
		if errors.Is(kerr, errNoBucket) {
			return nil, &cliflag.UsageError{Msg: fmt.Sprintf("subscription %s has no route: %v; to send its events elsewhere, add --route", t.name, kerr)}
		}
		if kerr != nil {
			return nil, kerr
		}
		r, gerr := getRoute(ctx, kv, t.name)
		if gerr != nil {
			if errors.Is(gerr, jetstream.ErrKeyNotFound) {
				return nil, &cliflag.UsageError{Msg: gerr.Error() + "; to send its events elsewhere, add --route"}
			}
			return nil, gerr
		}
		if r.entry == nil {
			return nil, &cliflag.UsageError{Msg: fmt.Sprintf("the route of subscription %s cannot be used: %v (fix it with routes set)", t.name, r.err)}
		}
		if !r.entry.Enabled {
			fmt.Fprintf(note, "note: the route of subscription %s is disabled; replaying to it anyway\n", t.name)
		}
		cfg, err = r.entry.HECConfig(t.name, key, f.hec.base())
	case t.name == "global" && f.hec.url != "":
		cfg, err = f.hec.config()
	default:
		r, serr := f.staticRoute(t.name)
		if serr != nil {
			return nil, serr
		}
		cfg, err = r.HECConfig(key, f.hec.base())
	}
	if err != nil {
		if cliflag.IsUsage(err) {
			return nil, err
		}
		return nil, &cliflag.UsageError{Msg: err.Error()}
	}
	client, err := huntress.New(cfg)
	if err != nil {
		return nil, &cliflag.UsageError{Msg: fmt.Sprintf("%s: %v", t.describe(), err)}
	}
	return client, nil
}
