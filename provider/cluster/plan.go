package cluster

import (
	"fmt"
	"sort"
	"strings"
)

// PlanSummary says in words what Apply would do, for plan-time
// diagnostics. It is computed from the Spec and the prior State alone
// (no host is contacted), so a host changed behind the engine's back is
// found only by Apply.
type PlanSummary struct {
	// Bootstrap is true when no cluster exists yet.
	Bootstrap bool
	// Join, Replace and Leave name hosts that will join, be replaced in
	// place (new image or configuration) and leave, in the order Apply
	// takes them (in a control-plane move, leaving control-plane hosts
	// paired with joins leave before the workers).
	Join    []string
	Replace []string
	Leave   []string
	// Actions are sentences, in order, for a person to read.
	Actions []string
}

// NoChanges reports whether Apply would change nothing.
func (p PlanSummary) NoChanges() bool {
	return !p.Bootstrap && len(p.Join) == 0 && len(p.Replace) == 0 && len(p.Leave) == 0
}

// Plan describes what Apply(spec, prior) would do. It returns an error only
// for a Spec Apply would refuse.
func Plan(spec Spec, prior State) (PlanSummary, error) {
	hosts, err := spec.hosts()
	if err != nil {
		return PlanSummary{}, err
	}
	s := spec.Settings.withDefaults()
	ca, caKey := prior.CACertPEM, prior.CAKeyPEM
	if spec.CACertPEM != "" {
		ca, caKey = spec.CACertPEM, spec.CAKeyPEM
	}
	var p PlanSummary
	p.Bootstrap = prior.ClusterID == ""
	want := map[string]bool{}
	var joinCP, joinW, replCP []string
	replW := map[string][]string{}
	var poolOrder []string
	for _, h := range hosts {
		want[h.Name] = true
		hs, known := prior.Hosts[h.Name]
		if !known {
			if h.Role == RoleControlPlane {
				joinCP = append(joinCP, h.Name)
			} else {
				joinW = append(joinW, h.Name)
			}
			continue
		}
		hash := renderHost(h, s, ca, caKey, nil, "", etcdInit{}).hash()
		digestChanged := spec.Image.Digest != "" && spec.Image.Digest != hs.Digest
		if !digestChanged && hash == hs.ConfigHash && hs.Role == h.Role {
			continue
		}
		if h.Role == RoleControlPlane {
			replCP = append(replCP, h.Name)
		} else {
			if _, ok := replW[h.Pool]; !ok {
				poolOrder = append(poolOrder, h.Pool)
			}
			replW[h.Pool] = append(replW[h.Pool], h.Name)
		}
	}
	var leaveCP, leaveW []string
	names := make([]string, 0, len(prior.Hosts))
	for n := range prior.Hosts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if want[n] {
			continue
		}
		if prior.Hosts[n].Role == RoleControlPlane {
			leaveCP = append(leaveCP, n)
		} else {
			leaveW = append(leaveW, n)
		}
	}
	if p.Bootstrap && len(joinCP) > 0 {
		p.Actions = append(p.Actions, fmt.Sprintf("control-plane host %s bootstraps a new cluster (etcd initial-cluster-state new)", joinCP[0]))
		if len(joinCP) > 1 {
			p.Actions = append(p.Actions, fmt.Sprintf("control-plane hosts %s join one at a time as etcd learners and are promoted", strings.Join(joinCP[1:], ", ")))
		}
	} else if len(joinCP) > 0 {
		p.Actions = append(p.Actions, fmt.Sprintf("control-plane hosts %s join one at a time as etcd learners and are promoted", strings.Join(joinCP, ", ")))
	}
	// A move: each join is paired with the removal of one leaving host, in
	// the order Apply takes them; leaving hosts beyond the joins go after
	// the workers.
	moving := !p.Bootstrap && len(joinCP) > 0 && len(leaveCP) > 0
	var pairedCP, laterCP []string
	if moving {
		var steps []string
		for i, j := range joinCP {
			steps = append(steps, "add learner "+j+", promote")
			if i < len(leaveCP) {
				steps = append(steps, "remove member "+leaveCP[i])
				pairedCP = append(pairedCP, leaveCP[i])
			}
		}
		laterCP = leaveCP[len(pairedCP):]
		p.Actions = append(p.Actions,
			fmt.Sprintf("etcd members move %s → %s, one at a time, each join paired with one removal so etcd never holds more than one extra member: %s",
				strings.Join(leaveCP, ", "), strings.Join(joinCP, ", "), strings.Join(steps, "; ")),
			fmt.Sprintf("control-plane hosts %s leave one at a time as their turn comes: drained, etcd member removed by the ID etcd reports (quorum checked before and after), stopped and wiped", strings.Join(pairedCP, ", ")),
			fmt.Sprintf("the published API endpoints move with them, from %s to %s; agents and clients that sync endpoints follow", strings.Join(leaveCP, ", "), strings.Join(controlPlaneNames(hosts), ", ")),
		)
	} else {
		laterCP = leaveCP
	}
	if len(replCP) > 0 {
		var snap string
		if spec.SnapshotPath != "" {
			snap = "an etcd snapshot is written to " + spec.SnapshotPath + " first"
		} else {
			snap = "no snapshot path is set, so no etcd snapshot is kept"
		}
		p.Actions = append(p.Actions, fmt.Sprintf("%s will be replaced one at a time with quorum checked before and after each (%s)", countHosts(len(replCP), "control-plane host"), snap))
	}
	if len(joinW) > 0 {
		p.Actions = append(p.Actions, fmt.Sprintf("workers %s join with join tokens minted for each", strings.Join(joinW, ", ")))
	}
	for _, pool := range poolOrder {
		batch := 1
		for _, wp := range spec.Workers {
			if wp.Name == pool {
				batch = wp.Rollout.or(spec.Rollout.or(defaultRollout)).MaxUnavailable
			}
		}
		how := "one at a time"
		if batch > 1 {
			how = fmt.Sprintf("%d at a time", batch)
		}
		p.Actions = append(p.Actions, fmt.Sprintf("%s of pool %s will be replaced %s (cordon, drain, install, wait healthy, uncordon)", countHosts(len(replW[pool]), "node"), pool, how))
	}
	if len(leaveW) > 0 {
		after := ""
		if len(joinW) > 0 {
			after = " after the new workers are healthy"
		}
		p.Actions = append(p.Actions, fmt.Sprintf("workers %s leave one at a time%s: cordoned, drained (stand-in pods keep deployments that may lose none at full strength), node deleted, stopped and wiped", strings.Join(leaveW, ", "), after))
	}
	if len(laterCP) > 0 {
		p.Actions = append(p.Actions, fmt.Sprintf("control-plane hosts %s leave one at a time: drained, etcd member removed by the ID etcd reports (quorum checked before and after), stopped and wiped", strings.Join(laterCP, ", ")))
	}
	if len(leaveW)+len(leaveCP) > 0 {
		p.Actions = append(p.Actions, "a leaving host that no longer answers SSH is removed from etcd and the cluster and dropped from state without a wipe")
	}
	if voters := len(spec.ControlPlane); voters%2 == 0 {
		p.Actions = append(p.Actions, fmt.Sprintf("warning: %d control-plane hosts tolerate no more failures than %d do; use an odd number", voters, voters-1))
	}
	p.Join = append(joinCP, joinW...)
	p.Replace = replCP
	for _, pool := range poolOrder {
		p.Replace = append(p.Replace, replW[pool]...)
	}
	for _, part := range [][]string{pairedCP, leaveW, laterCP} {
		p.Leave = append(p.Leave, part...)
	}
	if p.NoChanges() {
		p.Actions = append(p.Actions, "no changes: every host runs the desired image and configuration")
	}
	return p, nil
}

func controlPlaneNames(hosts []desiredHost) []string {
	var out []string
	for _, h := range hosts {
		if h.Role == RoleControlPlane {
			out = append(out, h.Name)
		}
	}
	return out
}

func countHosts(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
