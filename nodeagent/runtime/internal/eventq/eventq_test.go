package eventq

import (
	"testing"

	"github.com/berth-io/berth/nodeagent/runtime"
)

func TestPushNeverBlocksAndEventsArriveInOrder(t *testing.T) {
	q := New()
	defer q.Close()
	const n = 1000
	for i := range n { // nobody reads yet: Push must not block
		q.Push(runtime.ExitEvent{ID: "c", ExitCode: int32(i)})
	}
	for i := range n {
		ev := <-q.C()
		if ev.ExitCode != int32(i) {
			t.Fatalf("event %d has exit code %d, want %d", i, ev.ExitCode, i)
		}
	}
}

func TestCloseClosesTheChannelAndDiscardsLaterPushes(t *testing.T) {
	q := New()
	q.Push(runtime.ExitEvent{ID: "pending"})
	q.Close()
	q.Close() // a second Close is harmless
	q.Push(runtime.ExitEvent{ID: "late"})
	for ev := range q.C() {
		if ev.ID == "late" {
			t.Fatalf("received an event pushed after Close")
		}
	}
}
