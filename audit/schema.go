package audit

import _ "embed"

// Schema is the JSON Schema (draft 2020-12) of an event body: the
// documentation of the wire contract for publishers in other languages. It
// states the same rules as Validate and Inspect, except the UTF-8 and size
// limits, which JSON Schema cannot express.
//
//go:embed event.schema.json
var Schema []byte
