package client_test

import (
	"context"
	"sync"
	"testing"

	"github.com/berth-io/berth/control/client"
)

func TestWorkQueueCollapsesRepeatsAndNeverRunsAKeyTwiceAtOnce(t *testing.T) {
	q := client.NewWorkQueue()
	q.Add("a")
	q.Add("a")
	q.Add("b")
	if q.Len() != 2 {
		t.Fatalf("len %d, want 2: a repeated key is queued once", q.Len())
	}
	k, _ := q.Get()
	if k != "a" {
		t.Fatalf("got %q first, want a (FIFO)", k)
	}
	q.Add("a") // while a is processed
	k2, _ := q.Get()
	if k2 != "b" {
		t.Fatalf("got %q, want b: a is still being processed", k2)
	}
	if q.Len() != 0 {
		t.Fatal("a key added while processed must wait for Done")
	}
	q.Done("a")
	if q.Len() != 1 {
		t.Fatal("Done must queue again a key added while it was processed")
	}
	q.Done("b")
	q.ShutDown()
	if _, ok := q.Get(); ok {
		t.Fatal("Get after ShutDown must report ok=false")
	}
}

func TestWorkQueueRunRetriesFailedKeys(t *testing.T) {
	q := client.NewWorkQueue()
	ctx, cancel := context.WithCancel(t.Context())
	var mu sync.Mutex
	calls := map[string]int{}
	done := make(chan struct{})
	q.Add("flaky")
	go func() {
		defer close(done)
		q.Run(ctx, 2, nil, func(_ context.Context, key string) error {
			mu.Lock()
			defer mu.Unlock()
			calls[key]++
			if calls[key] < 3 {
				return context.DeadlineExceeded
			}
			cancel()
			return nil
		})
	}()
	<-done
	if calls["flaky"] != 3 {
		t.Fatalf("flaky ran %d times, want 3 (two failures then success)", calls["flaky"])
	}
}
