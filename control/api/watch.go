package api

import "encoding/json"

// EventType says what happened to an object in a watch stream.
type EventType string

// The watch event types. Bookmark carries only a resourceVersion, so a
// watcher can resume from it; Error carries a Status (Gone after
// compaction: relist).
const (
	Added    EventType = "ADDED"
	Modified EventType = "MODIFIED"
	Deleted  EventType = "DELETED"
	Bookmark EventType = "BOOKMARK"
	Error    EventType = "ERROR"
)

// WatchEvent is one line of a watch stream: newline-delimited JSON.
type WatchEvent struct {
	// Type of change.
	Type EventType `json:"type"`
	// Object is the object after the change (before it, for Deleted), a
	// Status for Error, or {"metadata":{"resourceVersion":N}} for Bookmark.
	Object json.RawMessage `json:"object"`
}
