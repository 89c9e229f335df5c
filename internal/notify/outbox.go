package notify

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// flush sends route's emails that are due and not claimed by a live
// instance, one claim at a time. It stops at the first email that cannot be
// sent: the mail server is likely down for the others too, and Tick comes
// back for them.
func (n *Notifier) flush(ctx context.Context, route string) {
	for range maxOutbox {
		if ctx.Err() != nil {
			return
		}
		fx, err := n.update(ctx, route, func(st *routeState, fx *effects) bool {
			now := n.cfg.Now()
			for _, m := range st.Outbox {
				if now.Before(m.NotBefore) || (m.Claim != "" && now.Before(m.LeaseUntil)) {
					continue
				}
				m.Claim = n.cfg.Instance + "/" + randomID()
				m.LeaseUntil = now.Add(n.cfg.Lease)
				m.Attempts++
				c := *m
				fx.claimed = &c
				return true
			}
			return false
		})
		if err != nil {
			if ctx.Err() == nil {
				n.log.Warn("cannot claim admin email; will retry", "route", route, "err", err)
			}
			return
		}
		if fx.claimed == nil {
			return
		}
		if !n.deliver(ctx, route, fx.claimed) {
			return
		}
	}
}

// deliver sends the claimed email m, retrying with backoff for up to
// SendTimeout, then records the outcome on the claim. It reports whether the
// email was sent.
func (n *Notifier) deliver(ctx context.Context, route string, m *mail) bool {
	log := n.log.With("route", route, "kind", m.Kind, "email", m.ID)
	msg := Message{ID: m.ID, To: m.To, Subject: m.Subject, Body: m.Body}
	sctx, cancel := context.WithTimeout(ctx, n.cfg.SendTimeout)
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(n.cfg.RetryInitial),
		backoff.WithMaxInterval(max(n.cfg.RetryInitial, n.cfg.SendTimeout/4)),
		backoff.WithMaxElapsedTime(n.cfg.SendTimeout),
	)
	err := backoff.RetryNotify(func() error {
		err := n.cfg.Mailer.Send(sctx, msg)
		if err == nil {
			return nil
		}
		n.failed.Add(1)
		count(ctx, n.in.failed, 1, route, m.Kind, failReason(err))
		if errors.Is(err, ErrPermanent) {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(b, sctx), func(err error, wait time.Duration) {
		log.Warn("admin email not sent; retrying", "err", err, "wait", wait)
	})
	cancel()
	if err == nil {
		n.sent.Add(1)
		count(ctx, n.in.sent, 1, route, m.Kind, "")
		log.Info("admin email sent", "recipients", len(m.To), "attempt", m.Attempts)
	}
	stopping := err != nil && ctx.Err() != nil

	// Record the outcome even while stopping, so that the claim is released
	// at once rather than when its lease lapses.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer rcancel()
	var dropped bool
	fx, uerr := n.update(rctx, route, func(st *routeState, fx *effects) bool {
		dropped = false
		i := slices.IndexFunc(st.Outbox, func(o *mail) bool { return o.ID == m.ID })
		if i < 0 || st.Outbox[i].Claim != m.Claim {
			return false // our lease lapsed and another instance took the email over
		}
		fx.settled = true
		o := st.Outbox[i]
		switch {
		case err == nil:
			st.Outbox = slices.Delete(st.Outbox, i, i+1)
		case stopping:
			o.Claim, o.LeaseUntil = "", time.Time{}
			o.Attempts--
		case errors.Is(err, ErrPermanent) || o.Attempts >= n.cfg.MaxAttempts:
			st.Outbox = slices.Delete(st.Outbox, i, i+1)
			dropped = true
		default:
			o.Claim, o.LeaseUntil = "", time.Time{}
			o.NotBefore = n.cfg.Now().Add(n.retryDelay(o.Attempts))
		}
		return true
	})
	switch {
	case uerr != nil && err == nil:
		log.Warn("admin email sent but not marked as sent; it may be sent again when its claim lapses", "err", uerr)
	case uerr != nil:
		log.Warn("cannot release the claim on an unsent admin email; it is retried when the claim lapses", "err", uerr)
	case !fx.settled && err == nil:
		log.Warn("admin email sent after its claim lapsed; another instance may send it too")
	case dropped:
		n.dropped.Add(1)
		reason := reasonAttempts
		if errors.Is(err, ErrPermanent) {
			reason = reasonRefused
		}
		count(ctx, n.in.dropped, 1, route, m.Kind, reason)
		log.Error("admin email dropped: it could not be sent", "err", err, "attempts", m.Attempts)
	case err != nil && !stopping:
		log.Warn("admin email not sent; will try again", "err", err, "attempt", m.Attempts, "next_in", n.retryDelay(m.Attempts))
	}
	return err == nil
}

// retryDelay is the wait before the next claim of an email whose attempt
// failed: SendTimeout doubled for every failed claim, capped at Window.
func (n *Notifier) retryDelay(attempts int) time.Duration {
	d := n.cfg.SendTimeout
	for i := 1; i < attempts && d < n.cfg.Window; i++ {
		d *= 2
	}
	return min(d, n.cfg.Window)
}
