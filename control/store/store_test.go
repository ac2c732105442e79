package store

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

func TestGeneratedNameSuffixUsesLowercaseLettersAndDigits(t *testing.T) {
	re := regexp.MustCompile(`^[a-z0-9]{5}$`)
	seen := map[string]bool{}
	for range 200 {
		s := randomSuffix(5)
		if !re.MatchString(s) {
			t.Fatalf("randomSuffix(5) = %q, want 5 characters of [a-z0-9]", s)
		}
		seen[s] = true
	}
	if len(seen) < 190 {
		t.Errorf("200 suffixes gave only %d distinct values", len(seen))
	}
}

func TestUIDIsVersion4UUID(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a, b := newUID(), newUID()
	for _, u := range []string{a, b} {
		if !re.MatchString(u) {
			t.Errorf("newUID() = %q, not a version 4 UUID", u)
		}
	}
	if a == b {
		t.Errorf("two UIDs are equal: %s", a)
	}
}

func TestLeaseSecondsRoundsUpToWholeSeconds(t *testing.T) {
	for _, tc := range []struct {
		ttl  time.Duration
		want int64
	}{
		{time.Millisecond, 1},
		{time.Second, 1},
		{1500 * time.Millisecond, 2},
		{time.Minute, 60},
	} {
		if got := leaseSeconds(tc.ttl); got != tc.want {
			t.Errorf("leaseSeconds(%s) = %d, want %d", tc.ttl, got, tc.want)
		}
	}
}

func TestSpecChangedIgnoresMetadataAndStatus(t *testing.T) {
	base := func() *api.Pod {
		return &api.Pod{
			Metadata: api.ObjectMeta{Name: "p", Namespace: "default", Labels: map[string]string{"a": "1"}},
			Spec:     api.PodSpec{Containers: []api.Container{{Name: "c", Image: "img:1"}}},
		}
	}
	for _, tc := range []struct {
		name   string
		change func(p *api.Pod)
		want   bool
	}{
		{"nothing", func(p *api.Pod) {}, false},
		{"labels", func(p *api.Pod) { p.Metadata.Labels["a"] = "2" }, false},
		{"resource version", func(p *api.Pod) { p.Metadata.ResourceVersion = 9 }, false},
		{"status", func(p *api.Pod) { p.Status.Phase = api.PodPhase("Running") }, false},
		{"empty instead of nil slice", func(p *api.Pod) { p.Spec.Containers[0].Args = []string{} }, false},
		{"image", func(p *api.Pod) { p.Spec.Containers[0].Image = "img:2" }, true},
		{"node name", func(p *api.Pod) { p.Spec.NodeName = "n1" }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := base(), base()
			tc.change(b)
			got, err := specChanged(a, b)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("specChanged = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSpecChangedSeesTopLevelFieldsOfKindsWithoutSpec(t *testing.T) {
	a := &api.Revision{Number: 1, TemplateHash: "abc"}
	b := &api.Revision{Number: 2, TemplateHash: "abc"}
	got, err := specChanged(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if !got {
		t.Error("a changed revision number was not seen as a change")
	}
}

func TestEveryListTypeMapsToItsKind(t *testing.T) {
	for _, ki := range api.Kinds() {
		got, err := kindOfList(ki.NewList())
		if err != nil {
			t.Fatalf("%s: %v", ki.Kind, err)
		}
		if got.Kind != ki.Kind {
			t.Errorf("list of %s maps to %s", ki.Kind, got.Kind)
		}
	}
}

func TestObjectKeysFollowTheLayout(t *testing.T) {
	s := New(nil, Options{Prefix: "/p"})
	for _, tc := range []struct {
		name    string
		obj     api.Object
		want    string
		invalid bool
	}{
		{"namespaced", &api.Pod{Metadata: api.ObjectMeta{Namespace: "ns", Name: "web"}}, "/p/registry/pods/ns/web", false},
		{"cluster-scoped", &api.Node{Metadata: api.ObjectMeta{Name: "n1"}}, "/p/registry/nodes/n1", false},
		{"namespaced without namespace", &api.Pod{Metadata: api.ObjectMeta{Name: "web"}}, "", true},
		{"cluster-scoped with namespace", &api.Node{Metadata: api.ObjectMeta{Namespace: "ns", Name: "n1"}}, "", true},
		{"no name", &api.Node{}, "", true},
		{"slash in name", &api.Node{Metadata: api.ObjectMeta{Name: "a/b"}}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.objectKey(api.KindOf(tc.obj), tc.obj)
			if tc.invalid {
				if !api.IsInvalid(err) {
					t.Fatalf("objectKey = %q, %v; want an Invalid error", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("objectKey = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestDeletedObjectWithoutPreviousValueIsNamedFromItsKey(t *testing.T) {
	pods, _ := api.LookupKind("pods")
	nodes, _ := api.LookupKind("nodes")
	for _, tc := range []struct {
		name     string
		ki       api.KindInfo
		ns       string
		key      string
		wantNS   string
		wantName string
	}{
		{"all namespaces", pods, "", "/p/registry/pods/ns1/web", "ns1", "web"},
		{"one namespace", pods, "ns1", "/p/registry/pods/ns1/web", "ns1", "web"},
		{"cluster-scoped", nodes, "", "/p/registry/nodes/n1", "", "n1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(nil, Options{Prefix: "/p/"})
			w := &watcher{ki: tc.ki, opts: WatchOptions{Namespace: tc.ns}, prefix: s.kindPrefix(tc.ki, tc.ns)}
			obj := w.fromKey(tc.key)
			m := obj.GetMeta()
			if m.Namespace != tc.wantNS || m.Name != tc.wantName {
				t.Errorf("fromKey(%q) = %s/%s, want %s/%s", tc.key, m.Namespace, m.Name, tc.wantNS, tc.wantName)
			}
			if obj.GetTypeMeta().Kind != tc.ki.Kind {
				t.Errorf("kind = %q, want %q", obj.GetTypeMeta().Kind, tc.ki.Kind)
			}
		})
	}
}

func TestEncodeLeavesOutResourceVersionAndDecodeSetsIt(t *testing.T) {
	p := &api.Pod{Metadata: api.ObjectMeta{Name: "p", Namespace: "d", ResourceVersion: 42}}
	data, err := encode(p)
	if err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`resourceVersion`).Match(data) {
		t.Errorf("stored form carries resourceVersion: %s", data)
	}
	if p.Metadata.ResourceVersion != 42 {
		t.Errorf("encode changed the caller's resourceVersion to %d", p.Metadata.ResourceVersion)
	}
	into := &api.Pod{Metadata: api.ObjectMeta{Labels: map[string]string{"stale": "x"}}}
	if err := decodeInto(into, data, 7); err != nil {
		t.Fatal(err)
	}
	want := &api.Pod{TypeMeta: api.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		Metadata: api.ObjectMeta{Name: "p", Namespace: "d", ResourceVersion: 7}}
	if !reflect.DeepEqual(into, want) {
		t.Errorf("decoded %+v, want %+v (nothing of the old value may survive)", into, want)
	}
}

func TestDecodeAllKeepsOrderAndReportsTheBadKey(t *testing.T) {
	pods, _ := api.LookupKind("pods")
	var kvs []*mvccpb.KeyValue
	for i := range 1000 {
		kvs = append(kvs, &mvccpb.KeyValue{
			Key:         []byte(fmt.Sprintf("k%d", i)),
			Value:       []byte(fmt.Sprintf(`{"metadata":{"namespace":"d","name":"p%d"}}`, i)),
			ModRevision: int64(i + 1),
		})
	}
	objs, err := decodeAll(pods, kvs)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range objs {
		if m := o.GetMeta(); m.Name != fmt.Sprintf("p%d", i) || m.ResourceVersion != int64(i+1) {
			t.Fatalf("item %d = %s@%d", i, m.Name, m.ResourceVersion)
		}
	}
	kvs[700].Value = []byte(`{"metadata":`)
	if _, err := decodeAll(pods, kvs); err == nil || !strings.Contains(err.Error(), "key k700") {
		t.Errorf("decoding a corrupt value: %v, want an error naming key k700", err)
	}
}
