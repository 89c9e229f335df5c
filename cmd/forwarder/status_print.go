package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// printStatus writes rep as aligned tables: streams, routes, replays (if
// any), instances, then the warnings.
func printStatus(w io.Writer, rep *statusReport) error {
	bw := bufio.NewWriter(w)
	now := rep.Time
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)

	fmt.Fprintln(tw, "STREAM\tMESSAGES\tBYTES\tFIRST\tLAST\tCONSUMERS")
	for _, s := range rep.Streams {
		if !s.Exists {
			fmt.Fprintf(tw, "%s\t(does not exist)\t\t\t\t\n", s.Name)
			continue
		}
		msgs := fmt.Sprint(s.Messages)
		if s.DeadLetters != nil {
			msgs += fmt.Sprintf(" (%d dead letter%s)", *s.DeadLetters, plural(*s.DeadLetters))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", s.Name, msgs, sizeOf(s.Bytes), stamp(s.FirstTime), stamp(s.LastTime), s.Consumers)
	}
	tw.Flush()

	routeTable := func(title string, rs []routeStatus) {
		fmt.Fprintln(bw)
		fmt.Fprintf(tw, "%s\tCONSUMER\tPENDING\tACK PENDING\tREDELIVERED\tIN FLIGHT\tBREAKER\tPAUSED UNTIL\tLAST DELIVERY\tDLQ\n", title)
		for i, r := range rs {
			paused := "-"
			if r.PausedUntil != nil {
				paused = fmt.Sprintf("%s (in %s)", stamp(r.PausedUntil), roundAge(r.PausedUntil.Sub(now)))
			} else if r.Paused {
				paused = "paused"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%d\n", r.Route, orDefault(r.Consumer, "(none)"),
				r.Pending, r.AckPending, r.Redelivered, r.InFlight, r.Breaker, paused, ago(r.LastDelivery, now), r.DLQ)
			if i%1000 == 999 {
				tw.Flush() // keep memory flat; columns may shift between blocks
			}
		}
		tw.Flush()
	}
	if len(rep.Routes) == 0 {
		fmt.Fprintln(bw, "\nROUTES: none (no consumer on the audit stream and no dead letters)")
	} else {
		routeTable("ROUTE", rep.Routes)
	}
	if len(rep.Replays) > 0 {
		routeTable("REPLAY", rep.Replays)
	}

	fmt.Fprintln(bw)
	if len(rep.Instances) == 0 {
		fmt.Fprintln(bw, "INSTANCES: none alive")
	} else {
		fmt.Fprintln(tw, "INSTANCE\tHOST\tPID\tSTARTED\tUPDATED\tROUTES\tBREAKERS OPEN\tVERSION")
		for _, in := range rep.Instances {
			updated := ago(&in.UpdatedAt, now)
			if in.Stale {
				updated += " (stale)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%d\t%s\n", in.Instance, orDefault(in.Host, "-"), in.PID,
				stamp(&in.StartedAt), updated, in.RoutesTotal, in.BreakersOpen, orDefault(in.Version, "-"))
		}
		tw.Flush()
	}
	if len(rep.Warnings) > 0 {
		fmt.Fprintln(bw)
		for _, s := range rep.Warnings {
			fmt.Fprintln(bw, "warning:", s)
		}
	}
	return bw.Flush()
}

// stamp is t in RFC 3339 UTC, "-" when unset.
func stamp(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// ago is how long before now t was: "12s ago", "-" when unset.
func ago(t *time.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return roundAge(now.Sub(*t)) + " ago"
}

// roundAge rounds d to what a reader needs: seconds under an hour, minutes
// beyond.
func roundAge(d time.Duration) string {
	d = max(d, 0).Round(time.Second)
	if d < time.Hour {
		return d.String()
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}

// sizeOf is n bytes in binary units.
func sizeOf(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func plural(n uint64) string {
	if n == 1 {
		return ""
	}
	return "s"
}
