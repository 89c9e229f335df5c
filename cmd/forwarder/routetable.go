package main

import (
	"sync"

	"github.com/ezssh/siem-forwarder/internal/huntress"
)

// routeInfo is what the notifier and the logs need to know of a route.
type routeInfo struct {
	destination string   // URL without secrets
	admins      []string // who is emailed about it
	client      *huntress.Client
	kv          bool // a subscription route from EZSSH_SIEM, not a static one
}

// routeTable is the routes this forwarder delivers to, static and from KV,
// by name. It is safe for concurrent use.
type routeTable struct {
	mu     sync.RWMutex
	routes map[string]routeInfo
}

func newRouteTable() *routeTable { return &routeTable{routes: map[string]routeInfo{}} }

// set records a route and returns the client it replaced, if any, so the
// caller can close its idle connections.
func (t *routeTable) set(name string, info routeInfo) (old *huntress.Client) {
	t.mu.Lock()
	defer t.mu.Unlock()
	prev := t.routes[name]
	t.routes[name] = info
	if prev.client != info.client {
		return prev.client
	}
	return nil
}

func (t *routeTable) remove(name string) (old *huntress.Client) {
	t.mu.Lock()
	defer t.mu.Unlock()
	prev := t.routes[name]
	delete(t.routes, name)
	return prev.client
}

func (t *routeTable) has(name string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	_, ok := t.routes[name]
	return ok
}

// recipients returns the admins of a route.
func (t *routeTable) recipients(name string) []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.routes[name].admins
}

// destination returns the destination of a route, "" when unknown.
func (t *routeTable) destination(name string) string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.routes[name].destination
}

// closeAll closes the idle connections of every route's client.
func (t *routeTable) closeAll() {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, r := range t.routes {
		if r.client != nil {
			r.client.CloseIdleConnections()
		}
	}
}
