package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/berth-io/berth/control/api"
)

// printObjects writes objects in the requested format: a table (default),
// json, yaml, or name (kind/name per line).
func printObjects(w io.Writer, ki api.KindInfo, objs []api.Object, format string, allNamespaces bool, now time.Time) error {
	switch format {
	case "json":
		return printJSON(w, objs)
	case "yaml":
		return printYAML(w, objs)
	case "name":
		for _, o := range objs {
			fmt.Fprintf(w, "%s/%s\n", strings.ToLower(ki.Kind), o.GetMeta().Name)
		}
		return nil
	case "", "table", "wide":
		return printTable(w, ki, objs, allNamespaces, now)
	}
	return fmt.Errorf("-o %q: use one of table, json, yaml, name", format)
}

func printJSON(w io.Writer, objs []api.Object) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if len(objs) == 1 {
		return enc.Encode(objs[0])
	}
	return enc.Encode(map[string]any{"kind": "List", "apiVersion": api.Version, "items": objs})
}

func printYAML(w io.Writer, objs []api.Object) error {
	for i, o := range objs {
		if i > 0 {
			fmt.Fprintln(w, "---")
		}
		b, err := yaml.Marshal(o)
		if err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// Age renders a duration the way people read object ages: 45s, 12m, 3h, 5d.
func Age(since, now time.Time) string {
	if since.IsZero() {
		return "<unknown>"
	}
	d := now.Sub(since)
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func printTable(w io.Writer, ki api.KindInfo, objs []api.Object, allNamespaces bool, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	cols, row := columns(ki.Kind, now)
	if allNamespaces && ki.Namespaced {
		fmt.Fprint(tw, "NAMESPACE\t")
	}
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
	for _, o := range objs {
		if allNamespaces && ki.Namespaced {
			fmt.Fprint(tw, o.GetMeta().Namespace+"\t")
		}
		fmt.Fprintln(tw, strings.Join(row(o), "\t"))
	}
	return tw.Flush()
}

func columns(kind string, now time.Time) ([]string, func(api.Object) []string) {
	age := func(o api.Object) string { return Age(o.GetMeta().CreationTimestamp, now) }
	switch kind {
	case "Pod":
		return []string{"NAME", "READY", "STATUS", "RESTARTS", "NODE", "IP", "AGE"}, func(o api.Object) []string {
			p := o.(*api.Pod)
			ready, restarts := 0, int32(0)
			for _, cs := range p.Status.ContainerStatuses {
				if cs.Ready {
					ready++
				}
				restarts += cs.RestartCount
			}
			return []string{p.Metadata.Name, fmt.Sprintf("%d/%d", ready, len(p.Spec.Containers)), PodStatusWord(p),
				fmt.Sprint(restarts), dash(p.Spec.NodeName), dash(p.Status.PodIP), age(o)}
		}
	case "Deployment":
		return []string{"NAME", "READY", "UP-TO-DATE", "AVAILABLE", "REVISION", "STATE", "AGE"}, func(o api.Object) []string {
			d := o.(*api.Deployment)
			want := int32(1)
			if d.Spec.Replicas != nil {
				want = *d.Spec.Replicas
			}
			return []string{d.Metadata.Name, fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, want),
				fmt.Sprint(d.Status.UpdatedReplicas), fmt.Sprint(d.Status.AvailableReplicas),
				fmt.Sprint(d.Status.LiveRevision), dash(string(d.Status.RolloutState)), age(o)}
		}
	case "Service":
		return []string{"NAME", "TYPE", "CLUSTER-IP", "PORT(S)", "AGE"}, func(o api.Object) []string {
			s := o.(*api.Service)
			var ports []string
			for _, p := range s.Spec.Ports {
				if p.NodePort != 0 {
					ports = append(ports, fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol))
				} else {
					ports = append(ports, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
				}
			}
			return []string{s.Metadata.Name, string(s.Spec.Type), dash(s.Spec.ClusterIP), strings.Join(ports, ","), age(o)}
		}
	case "Node":
		return []string{"NAME", "STATUS", "ADDRESS", "POD-CIDR", "VERSION", "IMAGE", "AGE"}, func(o api.Object) []string {
			n := o.(*api.Node)
			status := "NotReady"
			if api.IsNodeReady(n) {
				status = "Ready"
			}
			if n.Spec.Unschedulable {
				status += ",SchedulingDisabled"
			}
			img := n.Status.NodeInfo.NodeImageDigest
			if len(img) > 19 {
				img = img[:19]
			}
			return []string{n.Metadata.Name, status, dash(api.NodeInternalAddress(n)), dash(n.Spec.PodCIDR),
				dash(n.Status.NodeInfo.BerthVersion), dash(img), age(o)}
		}
	case "Endpoints":
		return []string{"NAME", "ENDPOINTS", "AGE"}, func(o api.Object) []string {
			e := o.(*api.Endpoints)
			var eps []string
			for _, s := range e.Subsets {
				for _, a := range s.Addresses {
					for _, p := range s.Ports {
						eps = append(eps, fmt.Sprintf("%s:%d", a.IP, p.Port))
					}
				}
			}
			sort.Strings(eps)
			return []string{e.Metadata.Name, dash(strings.Join(eps, ",")), age(o)}
		}
	case "Revision":
		return []string{"NAME", "DEPLOYMENT", "REVISION", "TEMPLATE-HASH", "AGE"}, func(o api.Object) []string {
			r := o.(*api.Revision)
			return []string{r.Metadata.Name, r.Deployment, fmt.Sprint(r.Number), r.TemplateHash, age(o)}
		}
	case "Event":
		return []string{"LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"}, func(o api.Object) []string {
			e := o.(*api.Event)
			return []string{Age(e.LastTimestamp, now), e.Type, e.Reason,
				strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name, e.Message}
		}
	case "Namespace":
		return []string{"NAME", "STATUS", "AGE"}, func(o api.Object) []string {
			n := o.(*api.Namespace)
			return []string{n.Metadata.Name, dash(n.Status.Phase), age(o)}
		}
	case "Lease":
		return []string{"NAME", "HOLDER", "AGE"}, func(o api.Object) []string {
			l := o.(*api.Lease)
			return []string{l.Metadata.Name, dash(l.Spec.HolderIdentity), age(o)}
		}
	case "Member":
		return []string{"NAME", "ID", "LEADER", "LEARNER", "STARTED", "PEER-URLS"}, func(o api.Object) []string {
			m := o.(*api.Member)
			return []string{dash(m.Metadata.Name), m.Status.ID, yesNo(m.Status.IsLeader), yesNo(m.Status.IsLearner),
				yesNo(m.Status.Started), strings.Join(m.Status.PeerURLs, ",")}
		}
	}
	return []string{"NAME", "AGE"}, func(o api.Object) []string { return []string{o.GetMeta().Name, age(o)} }
}

// PodStatusWord summarises a pod's state in one word, as a table column:
// the waiting reason of a container when there is one (CrashLoopBackOff,
// ImagePullBackOff), Terminating while it stops, else the phase.
func PodStatusWord(p *api.Pod) string {
	if p.Metadata.DeletionTimestamp != nil {
		return "Terminating"
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Waiting != nil && cs.State.Waiting.Reason != "" {
			return cs.State.Waiting.Reason
		}
		if cs.State.Terminated != nil && cs.State.Terminated.Reason != "" && p.Status.Phase != api.PodSucceeded {
			return cs.State.Terminated.Reason
		}
	}
	if p.Status.Phase == "" {
		return string(api.PodPending)
	}
	return string(p.Status.Phase)
}

func dash(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
