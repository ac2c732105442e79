package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/berth-io/berth/control/api"
)

// EventRecorder writes Events about objects, so `berth describe` and
// rollout failure messages can show what happened. A repeat of the same
// event (object, type, reason, message) updates the earlier one's count
// instead of adding another. Recording failures are logged, never
// returned: an event is evidence, not part of the work.
type EventRecorder struct {
	cli    *Client
	source string
	log    *slog.Logger
	now    func() time.Time

	mu   sync.Mutex
	seen map[string]*api.Event
}

// maxRecordedEvents bounds the repeat cache.
const maxRecordedEvents = 4096

// NewEventRecorder makes a recorder naming source (a controller or node
// name) as the events' origin.
func NewEventRecorder(cli *Client, source string, log *slog.Logger) *EventRecorder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &EventRecorder{cli: cli, source: source, log: log, now: time.Now, seen: map[string]*api.Event{}}
}

// Event records that something of type (api.EventNormal or
// api.EventWarning) happened to obj.
func (r *EventRecorder) Event(ctx context.Context, obj api.Object, typ, reason, message string) {
	m := obj.GetMeta()
	ki := api.KindOf(obj)
	ns := m.Namespace
	if !ki.Namespaced || ns == "" {
		ns = api.SystemNamespace
	}
	key := strings.Join([]string{ki.Kind, m.Namespace, m.Name, m.UID, typ, reason, message}, "\x00")
	now := r.now().UTC()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()

	r.mu.Lock()
	prev := r.seen[key]
	r.mu.Unlock()
	if prev != nil {
		ev := DeepCopy(prev)
		ev.Count++
		ev.LastTimestamp = now
		if err := r.cli.Update(ctx, ev); err == nil {
			r.remember(key, ev)
			return
		}
		// Gone or changed meanwhile: record a fresh one.
	}
	ev := &api.Event{
		Metadata: api.ObjectMeta{Name: eventName(m.Name), Namespace: ns},
		InvolvedObject: api.ObjectReference{
			Kind: ki.Kind, Namespace: m.Namespace, Name: m.Name, UID: m.UID,
		},
		Type: typ, Reason: reason, Message: message, Source: r.source,
		Count: 1, FirstTimestamp: now, LastTimestamp: now,
	}
	if err := r.cli.Create(ctx, ev); err != nil {
		r.log.Warn("could not record event", "object", api.Key(obj), "reason", reason, "err", err)
		return
	}
	r.remember(key, ev)
}

func (r *EventRecorder) remember(key string, ev *api.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.seen) >= maxRecordedEvents {
		clear(r.seen)
	}
	r.seen[key] = ev
}

// eventName makes a unique event name (a DNS label) from the object's name.
func eventName(obj string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	prefix := obj
	if len(prefix) > 52 {
		prefix = prefix[:52]
	}
	return fmt.Sprintf("%s-%s", strings.TrimRight(prefix, "-"), hex.EncodeToString(b))
}
