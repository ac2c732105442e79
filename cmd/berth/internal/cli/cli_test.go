package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
)

func TestReadObjectsAcceptsYAMLDocumentsAndJSON(t *testing.T) {
	tests := []struct {
		name  string
		input string
		kinds []string
	}{
		{"yaml documents", `
# a comment before the first document
kind: Deployment
apiVersion: v1
metadata: {name: web}
spec:
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "r:5000/web:v1"}]}
---
kind: Service
metadata: {name: web}
spec: {type: NodePort, selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
`, []string{"Deployment", "Service"}},
		{"json object", `{"kind":"Namespace","metadata":{"name":"team-a"}}`, []string{"Namespace"}},
		{"json list", `{"items":[{"kind":"Namespace","metadata":{"name":"a"}},{"kind":"Namespace","metadata":{"name":"b"}}]}`, []string{"Namespace", "Namespace"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := ReadObjects([]byte(tt.input))
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, o := range objs {
				kinds = append(kinds, api.KindOf(o).Kind)
			}
			if strings.Join(kinds, ",") != strings.Join(tt.kinds, ",") {
				t.Fatalf("kinds = %v, want %v", kinds, tt.kinds)
			}
		})
	}
}

func TestReadObjectsNamesTheBadDocument(t *testing.T) {
	_, err := ReadObjects([]byte("kind: Namespace\nmetadata: {name: a}\n---\nkind: Gizmo\n"))
	if err == nil || !strings.Contains(err.Error(), "document 2") || !strings.Contains(err.Error(), "unknown kind") {
		t.Fatalf("err = %v", err)
	}
}

func TestAge(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := map[time.Duration]string{30 * time.Second: "30s", 5 * time.Minute: "5m", 3 * time.Hour: "3h", 72 * time.Hour: "3d"}
	for d, want := range tests {
		if got := Age(now.Add(-d), now); got != want {
			t.Errorf("Age(%s) = %s, want %s", d, got, want)
		}
	}
}

func TestPodStatusWordPrefersWaitingReason(t *testing.T) {
	p := &api.Pod{Status: api.PodStatus{Phase: api.PodRunning, ContainerStatuses: []api.ContainerStatus{{
		State: api.ContainerState{Waiting: &api.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}}}}
	if got := PodStatusWord(p); got != "CrashLoopBackOff" {
		t.Fatalf("got %s", got)
	}
	now := time.Now()
	p.Metadata.DeletionTimestamp = &now
	if got := PodStatusWord(p); got != "Terminating" {
		t.Fatalf("got %s", got)
	}
}

func TestUnknownKindListsTheKnownOnes(t *testing.T) {
	var out, errOut bytes.Buffer
	err := Run(context.Background(), []string{"get", "gizmos", "--config", "/nonexistent"}, nil, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), `unknown kind "gizmos"`) || !strings.Contains(err.Error(), "deployments") {
		t.Fatalf("err = %v", err)
	}
}

func TestMissingConfigSaysHowToGetOne(t *testing.T) {
	t.Setenv(EnvConfig, "")
	var out bytes.Buffer
	err := Run(context.Background(), []string{"get", "pods"}, nil, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "BERTH_CONFIG") {
		t.Fatalf("err = %v", err)
	}
}

func TestTableColumnsForDeployments(t *testing.T) {
	ki, _ := api.LookupKind("deploy")
	three := int32(3)
	d := &api.Deployment{Metadata: api.ObjectMeta{Name: "web"}, Spec: api.DeploymentSpec{Replicas: &three},
		Status: api.DeploymentStatus{ReadyReplicas: 2, UpdatedReplicas: 3, AvailableReplicas: 2, LiveRevision: 4, RolloutState: api.RolloutProgressing}}
	var b bytes.Buffer
	if err := printObjects(&b, ki, []api.Object{d}, "", false, time.Now()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[1], "2/3") || !strings.Contains(lines[1], "Progressing") {
		t.Fatalf("table:\n%s", b.String())
	}
}
