package controller_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/control/plane"
	"github.com/berth-io/berth/internal/prereq"
)

// realCluster runs a Dev control plane (embedded etcd, store, API server)
// without its own controllers: each scenario starts the controller
// instances it needs against the real API, so leader election and every
// loop run over real etcd compare-and-swap and watches.
func realCluster(t *testing.T) *cluster {
	t.Helper()
	prereq.Integration(t)
	dir := t.TempDir()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := plane.Config{Name: "cp1", DataDir: dir, ListenAddress: "127.0.0.1:0", Dev: true, DisableControllers: true}
	go func() { done <- plane.Run(ctx, cfg, nil) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("control plane stopped with %v", err)
		}
	})
	adminPath := filepath.Join(dir, "admin.json")
	for {
		if _, err := os.Stat(adminPath); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("control plane stopped while starting: %v", err)
		case <-t.Context().Done():
			t.Fatal("test ended before the control plane started")
		case <-time.After(20 * time.Millisecond):
		}
	}
	cc, err := client.LoadConfig(adminPath)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := client.New(cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cli.Close)
	return &cluster{t: t, cli: cli, ctx: t.Context()}
}

func TestIntegrationDeploymentReplicasAreSpreadAcrossNodes(t *testing.T) {
	runDeploymentSpread(realCluster(t))
}

func TestIntegrationRollingUpdateStaysWithinSurgeAndUnavailability(t *testing.T) {
	runRollingUpdateBounds(realCluster(t))
}

func TestIntegrationFailedRolloutRollsBack(t *testing.T) {
	runFailurePolicy(realCluster(t), "Rollback")
}

func TestIntegrationFailedRolloutPauses(t *testing.T) {
	runFailurePolicy(realCluster(t), "Pause")
}

func TestIntegrationLostNodesPodsAreRecreatedElsewhere(t *testing.T) {
	runLostNode(realCluster(t))
}

func TestIntegrationOnlyTheLeaderActsAndAnotherTakesOver(t *testing.T) {
	runLeaderFailover(realCluster(t))
}
