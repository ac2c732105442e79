// Package eventq delivers exit events to one reader without ever blocking
// the writers and without dropping events: writers append to an unbounded
// queue, and one goroutine hands events to the reader's channel in order.
//
// It must never block a writer, and never send on its channel after Close.
package eventq

import (
	"sync"

	"github.com/berth-io/berth/nodeagent/runtime"
)

// Queue is an unbounded, ordered queue of exit events feeding one channel.
type Queue struct {
	mu      sync.Mutex
	pending []runtime.ExitEvent
	wake    chan struct{}
	done    chan struct{}
	out     chan runtime.ExitEvent
	stopped chan struct{}
	once    sync.Once
}

// New starts a queue; Close stops it.
func New() *Queue {
	q := &Queue{
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		out:     make(chan runtime.ExitEvent),
		stopped: make(chan struct{}),
	}
	go q.run()
	return q
}

// C is the channel the reader receives from; it is closed by Close.
func (q *Queue) C() <-chan runtime.ExitEvent { return q.out }

// Push adds ev to the queue; it never blocks. Events pushed after Close are
// discarded.
func (q *Queue) Push(ev runtime.ExitEvent) {
	q.mu.Lock()
	select {
	case <-q.done:
		q.mu.Unlock()
		return
	default:
	}
	q.pending = append(q.pending, ev)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Close stops delivery, discards what is pending and closes the channel.
// It may be called more than once.
func (q *Queue) Close() {
	q.once.Do(func() { close(q.done) })
	<-q.stopped
}

func (q *Queue) run() {
	defer close(q.stopped)
	defer close(q.out)
	for {
		q.mu.Lock()
		var ev runtime.ExitEvent
		have := len(q.pending) > 0
		if have {
			ev = q.pending[0]
			q.pending = q.pending[1:]
		}
		q.mu.Unlock()
		if !have {
			select {
			case <-q.wake:
				continue
			case <-q.done:
				return
			}
		}
		select {
		case q.out <- ev:
		case <-q.done:
			return
		}
	}
}
