package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/routes"
)

const routesSetIntro = `forwarder routes set SUB: create or change the route of subscription SUB.

A new route needs --hec-url, the token (--hec-token-file, or the variable
HUNTRESS_HEC_TOKEN) and --admin-emails. On an existing route every flag is
optional: what is not given is kept (the token too), and so are the fields of
the entry this forwarder does not know. The settings are checked before
anything is written; updated_at becomes now (a route's consumer, when first
created, starts at the events published from updated_at on). With
FORWARDER_SECRET_KEY_FILE the token is stored sealed. --disabled stores the
route disabled; without it the enabled state is kept (a new route is enabled).
An existing route is updated only if nobody changed it meanwhile.

The per-route flags have no environment variables, except the token's
HUNTRESS_HEC_TOKEN: the forwarder's own HUNTRESS_HEC_* variables describe its
global route and must not leak into a subscription's. For the same reason a
token from HUNTRESS_HEC_TOKEN is refused when HUNTRESS_HEC_URL is set to
another URL than the route's.`

func runRoutesSet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		c                                routesConn
		k                                routesKey
		hecURL, token, tokenFile, scheme string
		emails                           string
		disabled, allowInsecure          bool
		replicas                         int
		s                                = cliflag.New("forwarder routes set", routesSetIntro, stdout)
	)
	c.bind(s)
	k.bind(s)
	s.String(&hecURL, "hec-url", "", "", "the subscription's Huntress HEC URL (Generic HEC source: \"HTTP Event Collector URL\")")
	s.String(&token, "hec-token", "HUNTRESS_HEC_TOKEN", "", "the HEC token; prefer the environment variable or --hec-token-file so it stays out of the process list")
	s.String(&tokenFile, "hec-token-file", "", "", "file holding the HEC token")
	s.String(&scheme, "auth-scheme", "", "", "Authorization scheme: Splunk or Bearer (new routes: Splunk)")
	s.String(&emails, "admin-emails", "", "", "comma-separated email addresses of the subscription's administrators, who receive its delivery alerts")
	s.Bool(&disabled, "disabled", "", false, "store the route disabled (events are kept in the stream, not delivered)")
	s.Bool(&allowInsecure, "allow-insecure-http", "", false, "allow an http:// HEC URL to a host that is not loopback")
	s.Int(&replicas, "stream-replicas", "FORWARDER_STREAM_REPLICAS", 1, "replicas of the bucket "+routes.Bucket+" if set has to create it (3 in a cluster)")
	sub, help, err := parseRoutesFlags(s, args, &c, true)
	if help || err != nil {
		return err
	}
	given := map[string]bool{}
	s.FlagSet().Visit(func(f *flag.Flag) { given[f.Name] = true })

	// Read and check every input before connecting.
	if token != "" && tokenFile != "" {
		return cliflag.Usagef("give the HEC token once: either --hec-token-file or HUNTRESS_HEC_TOKEN (--hec-token), not both")
	}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return cliflag.Usagef("--hec-token-file: cannot read the HEC token file: %v", err)
		}
		token = strings.TrimSpace(string(b))
		if token == "" {
			return cliflag.Usagef("--hec-token-file: %s is empty", tokenFile)
		}
	}
	newToken := token != "" // an empty HUNTRESS_HEC_TOKEN gives no token
	var adminEmails []string
	if given["admin-emails"] {
		for _, a := range strings.Split(emails, ",") {
			if a = strings.TrimSpace(a); a != "" {
				adminEmails = append(adminEmails, a)
			}
		}
		if len(adminEmails) == 0 {
			return cliflag.Usagef("--admin-emails is empty: give at least one address")
		}
	}
	if given["hec-url"] && hecURL == "" {
		return cliflag.Usagef("--hec-url is empty")
	}
	key, err := k.load()
	if err != nil {
		return err
	}

	// apply builds the new entry from the current one (nil when none).
	var replaced bool
	apply := func(cur *routeEntry) (*routes.Entry, error) {
		e := &routes.Entry{Enabled: true, Provider: routes.ProviderHuntress}
		replaced = false
		if cur != nil && cur.entry != nil {
			e = cur.entry.Clone()
		} else if cur != nil {
			replaced = true // a value that is not JSON: start afresh
		}
		isNew := cur == nil || cur.entry == nil
		var missing []string
		if given["hec-url"] {
			e.HECURL = hecURL
		} else if isNew {
			missing = append(missing, "--hec-url")
		}
		if newToken {
			e.HECToken = token
		} else if isNew {
			missing = append(missing, "--hec-token-file (or HUNTRESS_HEC_TOKEN)")
		}
		if given["admin-emails"] {
			e.AdminEmails = adminEmails
		} else if isNew {
			missing = append(missing, "--admin-emails")
		}
		if len(missing) > 0 {
			return nil, cliflag.Usagef("routes set: subscription %s has no route yet: give %s", sub, strings.Join(missing, ", "))
		}
		if newToken {
			if err := checkForeignToken(e.HECURL, token); err != nil {
				return nil, err
			}
		}
		if given["auth-scheme"] {
			e.AuthScheme = scheme
		} else if e.AuthScheme == "" {
			e.AuthScheme = "Splunk"
		}
		if disabled {
			e.Enabled = false
		}
		e.AllowInsecureHTTP = allowInsecure
		if err := e.Validate(); err != nil {
			return nil, &cliflag.UsageError{Msg: fmt.Sprintf("routes set: subscription %s: %s (nothing was written)", sub, flagNames.Replace(err.Error()))}
		}
		if key != nil {
			sealed, err := routes.Seal(key, e.HECToken)
			if err != nil {
				return nil, err
			}
			e.HECToken = sealed
		}
		e.UpdatedAt = time.Now().UTC().Truncate(time.Millisecond)
		return e, nil
	}

	conn, err := c.connect(ctx, stderr, "routes")
	if err != nil {
		return err
	}
	defer conn.close()
	kv, err := routesBucket(ctx, conn.js)
	if errors.Is(err, errNoBucket) {
		kv, err = routes.EnsureBucket(ctx, conn.js, replicas)
	}
	if err != nil {
		return err
	}
	e, rev, err := updateRoute(ctx, kv, sub, apply)
	if err != nil {
		return err
	}
	if replaced {
		fmt.Fprintf(stderr, "note: the previous value of subscription %s was not a JSON object; it was replaced\n", sub)
	}
	tok, sealed := maskStored(e.HECToken, key)
	if sealed {
		tok += " (sealed)"
	}
	fmt.Fprintf(stdout, "Route of subscription %s set (revision %d): %s, %s, token %s, scheme %s, admins %s.\n",
		sub, rev, enabledWord(e.Enabled), routes.Destination(e.HECURL), tok, e.AuthScheme, strings.Join(e.AdminEmails, ", "))
	if !routes.IsSealed(e.HECToken) {
		fmt.Fprintf(stderr, "note: the token is stored in clear; set %s to store tokens sealed\n", routes.KeyFileEnv)
	}
	return nil
}

// flagNames turns the entry's field names in validation messages into the
// flags that set them.
var flagNames = strings.NewReplacer(
	"hec_url: ", "--hec-url: ",
	"hec_token: ", "the HEC token (--hec-token-file or HUNTRESS_HEC_TOKEN): ",
	"auth_scheme: ", "--auth-scheme: ",
	"admin_emails: ", "--admin-emails: ",
	"set allow_insecure_http (--allow-insecure-http)", "pass --allow-insecure-http",
)

// checkForeignToken refuses the token of HUNTRESS_HEC_TOKEN when
// HUNTRESS_HEC_URL names another destination than the route's: the variables
// then belong to the forwarder's own global route, and storing that token for
// a subscription would hand EZSSH's token to the customer's HEC.
func checkForeignToken(routeURL, token string) error {
	envURL, envTok := os.Getenv("HUNTRESS_HEC_URL"), os.Getenv("HUNTRESS_HEC_TOKEN")
	if envTok == "" || token != envTok || envURL == "" || envURL == routeURL {
		return nil
	}
	return cliflag.Usagef("routes set: the token comes from HUNTRESS_HEC_TOKEN, which goes with HUNTRESS_HEC_URL %s, not with the route's URL %s: give the subscription's own token with --hec-token-file (nothing was written)",
		routes.Destination(envURL), routes.Destination(routeURL))
}

func enabledWord(b bool) string {
	if b {
		return "enabled"
	}
	return "disabled"
}

const routesEnableIntro = `forwarder routes enable|disable SUB: start or stop delivering the events of
subscription SUB. A disabled route keeps its events in the stream (for as long
as the stream retains them); enabling it delivers them. updated_at is kept: it
is the start of a new route's consumer, and toggling must not skip events.`

func runRoutesEnable(ctx context.Context, args []string, stdout, stderr io.Writer, enable bool) error {
	var (
		c routesConn
		s = cliflag.New("forwarder routes "+map[bool]string{true: "enable", false: "disable"}[enable], routesEnableIntro, stdout)
	)
	c.bind(s)
	sub, help, err := parseRoutesFlags(s, args, &c, true)
	if help || err != nil {
		return err
	}
	conn, kv, err := c.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer conn.close()
	_, rev, err := updateRoute(ctx, kv, sub, func(cur *routeEntry) (*routes.Entry, error) {
		switch {
		case cur == nil:
			return nil, fmt.Errorf("no route for subscription %s (create it with routes set)", sub)
		case cur.entry == nil:
			return nil, fmt.Errorf("the route of subscription %s cannot be changed: %v (fix it with routes set)", sub, cur.err)
		case cur.entry.Enabled == enable:
			return nil, nil
		}
		e := cur.entry.Clone()
		e.Enabled = enable
		return e, nil
	})
	if err != nil {
		return err
	}
	if rev == 0 {
		fmt.Fprintf(stdout, "Route of subscription %s is already %s.\n", sub, enabledWord(enable))
		return nil
	}
	fmt.Fprintf(stdout, "Route of subscription %s %s (revision %d).\n", sub, enabledWord(enable), rev)
	return nil
}

const routesDeleteIntro = `forwarder routes delete SUB: remove the route of subscription SUB, with its
history in the bucket (so that old tokens do not linger). The forwarder stops
delivering and removes the route's consumer; the events stay in the stream
until they age out, and a global route still receives them.`

func runRoutesDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		c routesConn
		s = cliflag.New("forwarder routes delete", routesDeleteIntro, stdout)
	)
	c.bind(s)
	sub, help, err := parseRoutesFlags(s, args, &c, true)
	if help || err != nil {
		return err
	}
	conn, kv, err := c.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer conn.close()
	for range 5 {
		cur, err := getRoute(ctx, kv, sub)
		if err != nil {
			return err
		}
		err = kv.Purge(ctx, sub, jetstream.LastRevision(cur.revision))
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return fmt.Errorf("delete the route of subscription %s: %w", sub, err)
		}
		fmt.Fprintf(stdout, "Route of subscription %s deleted.\n", sub)
		return nil
	}
	return errRouteConflict
}
