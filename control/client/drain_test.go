package client_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

func TestDrainCordonsEvictsWithRetriesAndRecreatesBarePods(t *testing.T) {
	s := newServer(t)
	c := s.Client()
	ctx := testCtx(t)
	node := &api.Node{Metadata: api.ObjectMeta{Name: "n1"}}
	if err := c.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	owned := pod("owned", "n1", nil)
	owned.Metadata.OwnerReferences = []api.OwnerReference{{Kind: "Deployment", Name: "web", UID: "d1", Controller: true}}
	for _, p := range []*api.Pod{owned, pod("bare", "n1", map[string]string{"app": "bare"}), pod("elsewhere", "n2", nil)} {
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	// The first eviction of the owned pod is refused: its deployment
	// cannot lose a pod yet.
	var refused atomic.Int32
	s.AddHook(func(r *http.Request) error {
		if strings.HasSuffix(r.URL.Path, "/owned/eviction") && refused.Add(1) == 1 {
			return api.NewError(api.ReasonTooManyRequests, "deployment web cannot lose another pod now")
		}
		return nil
	})
	// The node's agent: it finishes terminating pods.
	agentCtx, stopAgent := context.WithCancel(ctx)
	defer stopAgent()
	go func() {
		for agentCtx.Err() == nil {
			var l api.PodList
			if err := c.List(agentCtx, &l, client.ListOptions{NodeName: "n1"}); err == nil {
				for i := range l.Items {
					if l.Items[i].Metadata.DeletionTimestamp != nil {
						_ = c.Delete(agentCtx, &l.Items[i], client.GracePeriod(0))
					}
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	if err := client.Drain(ctx, c, "n1", client.DrainOptions{PollInterval: 5 * time.Millisecond, Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if refused.Load() < 2 {
		t.Fatal("a refused eviction must be retried")
	}
	if err := c.Get(ctx, "", "n1", node); err != nil || !node.Spec.Unschedulable {
		t.Fatalf("node must be cordoned: %v %+v", err, node.Spec)
	}
	var bare api.Pod
	if err := c.Get(ctx, "default", "bare", &bare); err != nil {
		t.Fatalf("a bare pod must be re-created after a drain: %v", err)
	}
	if bare.Spec.NodeName != "" || bare.Metadata.Labels["app"] != "bare" {
		t.Fatalf("re-created bare pod must be unbound with its labels: %+v", bare)
	}
	var owned2 api.Pod
	if err := c.Get(ctx, "default", "owned", &owned2); !api.IsNotFound(err) {
		t.Fatalf("a deployment's pod is left to its deployment, got %v", err)
	}
	var other api.Pod
	if err := c.Get(ctx, "default", "elsewhere", &other); err != nil {
		t.Fatalf("pods on other nodes are untouched: %v", err)
	}
}
