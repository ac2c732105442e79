package client

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// WorkQueue is a queue of object keys for control loops, in the style of
// client-go's workqueue: a key queued several times before a worker takes
// it is processed once, a key is never processed by two workers at once
// (a key added while it is processed is queued again when Done is called),
// and failed keys come back with exponential back-off.
type WorkQueue struct {
	mu         sync.Mutex
	cond       *sync.Cond
	queue      []string
	dirty      map[string]bool
	processing map[string]bool
	failures   map[string]int
	shutdown   bool
	baseDelay  time.Duration
	maxDelay   time.Duration
}

// NewWorkQueue makes an empty queue whose retries start at 50 ms and
// double up to 30 s.
func NewWorkQueue() *WorkQueue {
	q := &WorkQueue{
		dirty: map[string]bool{}, processing: map[string]bool{}, failures: map[string]int{},
		baseDelay: 50 * time.Millisecond, maxDelay: 30 * time.Second,
	}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Add queues key unless it is queued already.
func (q *WorkQueue) Add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutdown || q.dirty[key] {
		return
	}
	q.dirty[key] = true
	if q.processing[key] {
		return // Done will queue it again
	}
	q.queue = append(q.queue, key)
	q.cond.Signal()
}

// AddAfter queues key once d has passed.
func (q *WorkQueue) AddAfter(key string, d time.Duration) {
	if d <= 0 {
		q.Add(key)
		return
	}
	time.AfterFunc(d, func() { q.Add(key) })
}

// AddRateLimited queues key after a delay that doubles with each failure
// of that key since it was last forgotten.
func (q *WorkQueue) AddRateLimited(key string) {
	q.mu.Lock()
	n := q.failures[key]
	q.failures[key] = n + 1
	q.mu.Unlock()
	d := q.baseDelay
	for i := 0; i < n && d < q.maxDelay; i++ {
		d *= 2
	}
	q.AddAfter(key, min(d, q.maxDelay))
}

// Forget clears key's failure count after it was processed successfully.
func (q *WorkQueue) Forget(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.failures, key)
}

// Get waits for a key; ok is false once the queue is shut down. Call Done
// with the key when finished.
func (q *WorkQueue) Get() (key string, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.queue) == 0 && !q.shutdown {
		q.cond.Wait()
	}
	if q.shutdown {
		return "", false
	}
	key, q.queue = q.queue[0], q.queue[1:]
	delete(q.dirty, key)
	q.processing[key] = true
	return key, true
}

// Done marks key as processed, queueing it again if it was added meanwhile.
func (q *WorkQueue) Done(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, key)
	if q.dirty[key] && !q.shutdown {
		q.queue = append(q.queue, key)
		q.cond.Signal()
	}
}

// Len returns the number of keys waiting.
func (q *WorkQueue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queue)
}

// ShutDown wakes every Get with ok false; later Adds are ignored.
func (q *WorkQueue) ShutDown() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.shutdown = true
	q.cond.Broadcast()
}

// Run processes keys with workers goroutines until ctx ends, then shuts
// the queue down and waits for the workers. A key whose fn fails is
// retried with back-off and logged.
func (q *WorkQueue) Run(ctx context.Context, workers int, log *slog.Logger, fn func(ctx context.Context, key string) error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	stop := context.AfterFunc(ctx, q.ShutDown)
	defer stop()
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for {
				key, ok := q.Get()
				if !ok {
					return
				}
				if err := fn(ctx, key); err != nil {
					if ctx.Err() == nil {
						log.Warn("sync failed; retrying", "key", key, "err", err)
						q.AddRateLimited(key)
					}
				} else {
					q.Forget(key)
				}
				q.Done(key)
			}
		})
	}
	wg.Wait()
}
