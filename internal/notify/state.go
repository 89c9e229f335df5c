package notify

import (
	"slices"
	"time"
)

// routeState is one route's throttle state, stored as JSON under
// "route.<name>" and changed only by compare-and-set.
//
// An incident starts with the first dead letter or the first breaker opening
// and is mailed at once. What follows is gathered in Pending and mailed as a
// digest at most once per window. A recovery is mailed at once and ends the
// incident; an incident of dead letters alone ends quietly after a window
// without new ones. Emails wait in Outbox until one instance has claimed and
// sent them.
type routeState struct {
	Route       string `json:"route"`
	Destination string `json:"destination,omitempty"`

	Active bool      `json:"active,omitempty"`
	Since  time.Time `json:"since,omitzero"`
	// Outage is set from the first "opened" to the first "recovered"; the
	// other instances' reports of the same outage change nothing.
	Outage *outage `json:"outage,omitempty"`
	// Total counts the dead letters of the whole incident; Pending those not
	// mailed yet.
	Total   tally `json:"total"`
	Pending tally `json:"pending"`

	// LastMail is when the last incident, digest or recovery email was
	// queued: the next digest waits a window from it.
	LastMail       time.Time `json:"last_mail,omitzero"`
	LastDeadLetter time.Time `json:"last_dead_letter,omitzero"`
	// RecoveredAt is the last recovery: an outage that starts again within
	// a window of it is flapping and goes into the digest, not its own email.
	RecoveredAt time.Time `json:"recovered_at,omitzero"`

	Aging         *aging    `json:"aging,omitempty"` // a warning waiting for its window
	LastAgingMail time.Time `json:"last_aging_mail,omitzero"`

	Seen   []string `json:"seen,omitempty"` // IDs of the last alerts handled
	Outbox []*mail  `json:"outbox,omitempty"`
	Seq    uint64   `json:"seq,omitempty"` // numbers the emails
}

type outage struct {
	Since   time.Time `json:"since"`
	Class   string    `json:"class,omitempty"`
	Error   string    `json:"error,omitempty"`
	Status  int       `json:"status,omitempty"`
	Code    int       `json:"code,omitempty"`
	HasCode bool      `json:"has_code,omitempty"`
	Reports int       `json:"reports"`
	// Mailed: the admins were told this outage started (by its own email
	// or a digest), so its recovery gets its own email too.
	Mailed bool `json:"mailed,omitempty"`
}

type aging struct {
	Held      uint64    `json:"held"`
	ExpiresAt time.Time `json:"expires_at"`
	At        time.Time `json:"at"`
}

// tally counts dead letters, with a few samples.
type tally struct {
	Reasons       map[string]int `json:"reasons,omitempty"`
	Subscriptions map[string]int `json:"subscriptions,omitempty"`
	OtherSubs     int            `json:"other_subs,omitempty"` // dead letters of subscriptions past the map's cap
	Samples       []sample       `json:"samples,omitempty"`
	First         time.Time      `json:"first,omitzero"`
	Last          time.Time      `json:"last,omitzero"`
	// Reopened counts outages that started within a window of a recovery
	// (flapping) and so had no email of their own.
	Reopened  int       `json:"reopened,omitempty"`
	Recovered time.Time `json:"recovered,omitzero"` // a flapping outage recovered
}

type sample struct {
	At           time.Time `json:"at"`
	Reason       string    `json:"reason"`
	Subscription string    `json:"subscription,omitempty"`
	Error        string    `json:"error,omitempty"`
	Status       int       `json:"status,omitempty"`
	Code         int       `json:"code,omitempty"`
	HasCode      bool      `json:"has_code,omitempty"`
}

// mail is an email waiting to be sent. Whoever claims it holds it until
// LeaseUntil; a claim that outlives its lease (its holder crashed) is free
// again.
type mail struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	To         []string  `json:"to"`
	Subject    string    `json:"subject"`
	Body       string    `json:"body"`
	Queued     time.Time `json:"queued"`
	Claim      string    `json:"claim,omitempty"`
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	NotBefore  time.Time `json:"not_before,omitzero"`
	Attempts   int       `json:"attempts,omitempty"`
}

// Bounds on the stored state, so that a storm of alerts cannot grow it.
const (
	maxSamples       = 5
	maxSubscriptions = 20
	maxSeen          = 64
	maxOutbox        = 32
)

func (t *tally) empty() bool {
	return t.count() == 0 && t.Reopened == 0 && t.Recovered.IsZero()
}

func (t *tally) count() int {
	n := 0
	for _, c := range t.Reasons {
		n += c
	}
	return n
}

func (t *tally) add(a Alert, at time.Time) {
	if t.Reasons == nil {
		t.Reasons = map[string]int{}
	}
	t.Reasons[a.Reason]++
	if a.Subscription != "" {
		if t.Subscriptions == nil {
			t.Subscriptions = map[string]int{}
		}
		if _, ok := t.Subscriptions[a.Subscription]; ok || len(t.Subscriptions) < maxSubscriptions {
			t.Subscriptions[a.Subscription]++
		} else {
			t.OtherSubs++
		}
	}
	if t.First.IsZero() || at.Before(t.First) {
		t.First = at
	}
	if at.After(t.Last) {
		t.Last = at
	}
	if len(t.Samples) < maxSamples {
		t.Samples = append(t.Samples, sample{
			At: at, Reason: a.Reason, Subscription: a.Subscription, Error: a.Error,
			Status: a.Status, Code: a.Code, HasCode: a.HasCode,
		})
	}
}

// seen records id and reports whether it was already there.
func (s *routeState) seen(id string) bool {
	if id == "" {
		return false
	}
	if slices.Contains(s.Seen, id) {
		return true
	}
	s.Seen = append(s.Seen, id)
	if len(s.Seen) > maxSeen {
		s.Seen = s.Seen[len(s.Seen)-maxSeen:]
	}
	return false
}

func (s *routeState) closeIncident() {
	s.Active = false
	s.Since = time.Time{}
	s.Outage = nil
	s.Total = tally{}
	s.Pending = tally{}
}
