package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/server"
)

func TestIntegrationWatchResumesAfterARevisionWithExactlyTheLaterEvents(t *testing.T) {
	c := newCluster(t)
	var p1, p2, p3 api.Pod
	c.must(c.admin, http.StatusCreated, http.MethodPost, podsPath("default"), newPod("p1"), &p1)
	c.must(c.admin, http.StatusCreated, http.MethodPost, podsPath("default"), newPod("p2"), &p2)
	c.must(c.admin, http.StatusCreated, http.MethodPost, podsPath("default"), newPod("p3"), &p3)

	w := c.watch(c.admin, fmt.Sprintf("%s?watch=true&resourceVersion=%d", podsPath("default"), p1.Metadata.ResourceVersion))
	c.must(c.admin, http.StatusOK, http.MethodDelete, objPath("pods", "default", "p2"), nil, nil)
	want := []string{"ADDED p2", "ADDED p3", "DELETED p2"}
	for i, w0 := range want {
		if got := eventName(w.next(false)); got != w0 {
			t.Fatalf("event %d: got %q, want %q", i, got, w0)
		}
	}
}

func TestIntegrationWatchWithoutRevisionStartsNowAndFiltersByNode(t *testing.T) {
	c := newCluster(t)
	c.must(c.admin, http.StatusCreated, http.MethodPost, podsPath("default"), newPod("before"), nil)
	w := c.watch(c.admin, podsPath("")+"?watch=true&fieldSelector=spec.nodeName%3Dn1")
	other := newPod("elsewhere")
	other.Spec.NodeName = "n2"
	c.must(c.admin, http.StatusCreated, http.MethodPost, podsPath("default"), other, nil)
	mine := newPod("mine")
	mine.Spec.NodeName = "n1"
	c.must(c.admin, http.StatusCreated, http.MethodPost, podsPath("default"), mine, nil)
	if got := eventName(w.next(false)); got != "ADDED mine" {
		t.Fatalf("first event %q, want ADDED mine (nothing from before the watch, nothing for n2)", got)
	}
}

func TestIntegrationWatchAnswersGoneAfterCompaction(t *testing.T) {
	c := newCluster(t)
	var p api.Pod
	c.must(c.admin, http.StatusCreated, http.MethodPost, podsPath("default"), newPod("old"), &p)
	c.must(c.admin, http.StatusCreated, http.MethodPost, podsPath("default"), newPod("newer"), nil)
	rev, err := c.store.Revision(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := shared.cli.Compact(testCtx(t), rev); err != nil {
		t.Fatal(err)
	}
	w := c.watch(c.admin, fmt.Sprintf("%s?watch=true&resourceVersion=%d", podsPath("default"), p.Metadata.ResourceVersion-1))
	ev := w.next(false)
	if ev.Type != api.Error {
		t.Fatalf("got %s, want ERROR", ev.Type)
	}
	var st api.Status
	if err := json.Unmarshal(ev.Object, &st); err != nil || st.Reason != api.ReasonGone {
		t.Fatalf("error event %s, want a Status with reason Gone", ev.Object)
	}
}

func TestIntegrationIdleWatchGetsBookmarksItCanResumeFrom(t *testing.T) {
	c := newCluster(t, func(cfg *server.Config) { cfg.BookmarkInterval = 20 * time.Millisecond })
	var p api.Pod
	c.must(c.admin, http.StatusCreated, http.MethodPost, podsPath("default"), newPod("p"), &p)
	w := c.watch(c.admin, podsPath("default")+"?watch=true")
	ev := w.next(true)
	if ev.Type != api.Bookmark {
		t.Fatalf("got %s, want BOOKMARK on an idle watch", ev.Type)
	}
	var b struct {
		Metadata api.ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(ev.Object, &b); err != nil {
		t.Fatal(err)
	}
	if b.Metadata.ResourceVersion < p.Metadata.ResourceVersion {
		t.Fatalf("bookmark at %d, before the pod created at %d", b.Metadata.ResourceVersion, p.Metadata.ResourceVersion)
	}
	// Resuming from the bookmark sees the next change and nothing before.
	w2 := c.watch(c.admin, fmt.Sprintf("%s?watch=true&resourceVersion=%d", podsPath("default"), b.Metadata.ResourceVersion))
	c.must(c.admin, http.StatusCreated, http.MethodPost, podsPath("default"), newPod("q"), nil)
	if got := eventName(w2.next(false)); got != "ADDED q" {
		t.Fatalf("resumed watch: got %q, want ADDED q", got)
	}
}
