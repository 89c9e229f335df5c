package pipeline

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// checkAging warns, through a StateAging route event, when the oldest event a
// paused route holds will age out of the stream within AgingWarning. The
// stream's limits, not the forwarder, decide when events go; this makes sure a
// person hears about it first.
func (r *runner) checkAging(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := r.cons().Info(ctx)
	if err != nil {
		return
	}
	held := info.NumPending + uint64(info.NumAckPending)
	if held == 0 {
		return
	}
	stream, err := r.js.Stream(ctx, r.cfg.Stream)
	if err != nil {
		return
	}
	maxAge := stream.CachedInfo().Config.MaxAge
	if maxAge <= 0 {
		return // kept until a size limit removes them: no age to warn about
	}
	oldest, err := stream.GetMsg(ctx, info.AckFloor.Stream+1, jetstream.WithGetMsgSubject(r.route.FilterSubject))
	if err != nil {
		return
	}
	expires := oldest.Time.Add(maxAge)
	if time.Until(expires) > r.cfg.AgingWarning {
		return
	}
	r.log.Warn("held events will age out of the stream soon", "held", held, "expires_at", expires)
	r.publishRouteEvent(ctx, RouteEvent{State: StateAging, HeldEvents: held, OldestAt: oldest.Time.UTC(), ExpiresAt: expires.UTC()})
}
