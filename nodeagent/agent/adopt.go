package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-io/berth/control/api"
)

// collectAdoptions lists what a previous agent left: containers in the
// runtime and pods attached to the network. Pod workers claim them; what
// nobody claims is removed once the pod list has synced.
func (a *Agent) collectAdoptions(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ctrs, err := a.rt.ListContainers(lctx)
	if err != nil {
		return fmt.Errorf("list containers to adopt: %w", err)
	}
	atts, err := a.net.List(lctx)
	if err != nil {
		return fmt.Errorf("list pod network attachments to adopt: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	get := func(uid string) *adoption {
		ad := a.adopt[uid]
		if ad == nil {
			ad = &adoption{}
			a.adopt[uid] = ad
		}
		return ad
	}
	for _, c := range ctrs {
		if c.Meta.PodUID == "" {
			continue
		}
		ad := get(c.Meta.PodUID)
		ad.containers = append(ad.containers, c)
	}
	for _, at := range atts {
		ad := get(at.UID)
		ad.netns, ad.ip = at.NetNSPath, at.IP
	}
	if len(a.adopt) > 0 {
		a.log.Info("found pods of a previous agent run", "pods", len(a.adopt), "containers", len(ctrs))
	}
	return nil
}

// removeOrphans stops and removes what belongs to no pod bound here.
func (a *Agent) removeOrphans(ctx context.Context) {
	a.mu.Lock()
	orphans := a.adopt
	a.adopt = map[string]*adoption{}
	a.mu.Unlock()
	for uid, ad := range orphans {
		for _, c := range ad.containers {
			a.log.Info("removing container of a pod no longer bound here", "container", c.ID,
				"pod", c.Meta.PodNamespace+"/"+c.Meta.PodName)
			sctx, cancel := context.WithTimeout(ctx, 45*time.Second)
			if err := a.rt.StopContainer(sctx, c.ID, 10*time.Second); err != nil {
				a.log.Warn("stop orphan container", "container", c.ID, "err", err)
			}
			if err := a.rt.RemoveContainer(sctx, c.ID); err != nil {
				a.log.Warn("remove orphan container", "container", c.ID, "err", err)
			}
			cancel()
		}
		nctx, cancel := context.WithTimeout(ctx, time.Minute)
		if err := a.net.Teardown(nctx, uid); err != nil {
			a.log.Warn("tear down orphan pod network", "pod", uid, "err", err)
		}
		cancel()
		_ = os.RemoveAll(filepath.Join(a.cfg.StateDir, "pods", uid))
	}
}

// importPreloaded imports the image archives the node image carries, so
// pods of those images start without a registry.
func (a *Agent) importPreloaded(ctx context.Context) {
	entries, err := os.ReadDir(a.cfg.PreloadDir)
	if err != nil {
		if !os.IsNotExist(err) {
			a.log.Warn("read preloaded images", "dir", a.cfg.PreloadDir, "err", err)
		}
		return
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".tar") {
			continue
		}
		path := filepath.Join(a.cfg.PreloadDir, e.Name())
		ictx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		imgs, err := a.rt.ImportArchive(ictx, path)
		cancel()
		if err != nil {
			a.log.Warn("import preloaded image archive", "archive", path, "err", err)
			continue
		}
		for _, img := range imgs {
			a.log.Info("imported preloaded image", "image", img.Ref, "digest", img.Digest)
		}
	}
}

// servicesLoop programs the overlay and the service rules whenever nodes,
// services or endpoints change, and reports the programmed revision on the
// Node so stopping pods elsewhere can rely on it.
func (a *Agent) servicesLoop(ctx context.Context) {
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.servicesWake:
		case <-retry.C:
		}
		if !a.nodes.HasSynced() || !a.services.HasSynced() || !a.endpoints.HasSynced() {
			retry.Reset(200 * time.Millisecond)
			continue
		}
		snap := ServiceSnapshot{Revision: a.endpoints.ResourceVersion()}
		for _, o := range a.nodes.List() {
			snap.Nodes = append(snap.Nodes, o.(*api.Node))
		}
		for _, o := range a.services.List() {
			snap.Services = append(snap.Services, o.(*api.Service))
		}
		for _, o := range a.endpoints.List() {
			snap.Endpoints = append(snap.Endpoints, o.(*api.Endpoints))
		}
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := a.net.SyncOverlay(sctx, snap.Nodes)
		if err != nil {
			a.log.Warn("sync overlay", "err", err)
		}
		if a.proxy != nil {
			rev, perr := a.proxy.Sync(sctx, snap)
			if perr != nil {
				a.log.Warn("sync service rules", "err", perr)
				err = perr
			} else if rev > a.rulesRevision.Load() {
				a.rulesRevision.Store(rev)
				a.notifyGate()
				a.wakeNodeStatus()
			}
		}
		cancel()
		if err != nil {
			retry.Reset(2 * time.Second)
		}
	}
}
