// Package audit is the wire contract between EZSSH services and the SIEM
// forwarder: the audit event, the subject it is published on, the rules a body
// must pass, the JSON Schema that documents them for other languages, and a
// JetStream publisher.
//
// # Wire contract
//
// Stream: StreamName (EZSSH_AUDIT), subjects SubjectAll (ezssh.audit.>),
// limits retention, file storage, a two-minute duplicate window. EnsureStream
// creates it with those settings.
//
// Subject: ezssh.audit.<SubscriptionId>.<kind>, where kind is the lower-cased
// EventType without its EZSSH_ prefix (EZSSH_SSH → ssh, EZSSH_GIT → git). See
// Subject and KindOf. The subscription in the subject lets a route filter one
// customer (SubscriptionFilter), lets NATS permissions restrict what a service
// may publish, and lets a replay pick one customer.
//
// Headers: Nats-Msg-Id carries the EventId, so a publish retried within the
// stream's duplicate window is stored once.
//
// Body: one JSON object, UTF-8, at most MaxEventSize bytes, with the string
// fields EventId, EventType, SubscriptionId and RequestDate required, and
// ActionPerformed, UserPublicKey, Certificate, RequestorFriendlyName and
// Criticality optional. Any other field is allowed and forwarded untouched.
// Schema holds the JSON Schema (draft 2020-12) of the body; Validate and
// Inspect apply the same rules in Go.
//
// A service in another language publishes the JSON body with a plain NATS
// JetStream publish to the subject above, with the Nats-Msg-Id header set.
package audit
