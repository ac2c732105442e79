package api

import "sort"

// Default values, named so documentation and validators use the same numbers.
const (
	DefaultTerminationGracePeriodSeconds int64 = 30
	DefaultProbePeriodSeconds            int32 = 10
	DefaultProbeTimeoutSeconds           int32 = 1
	DefaultProbeSuccessThreshold         int32 = 1
	DefaultProbeFailureThreshold         int32 = 3
	DefaultReplicas                      int32 = 1
	DefaultProgressDeadlineSeconds       int32 = 600
	DefaultRevisionHistoryLimit          int32 = 10
	DefaultMaxSurge                            = "25%"
	DefaultMaxUnavailable                      = "25%"
	DefaultLeaseDurationSeconds          int32 = 15
)

// Default fills every field the user left empty with its default and rewrites
// quantities into their canonical form, so that what is stored is complete
// and the same intent is always stored the same way. It never overrides a
// value the user set, and it is idempotent. Invalid quantities are left as
// they are for Validate to report.
func Default(obj Object) {
	m := obj.GetMeta()
	ki := KindOf(obj)
	if ki.Namespaced && m.Namespace == "" {
		m.Namespace = DefaultNamespace
	}
	SetTypeMeta(obj)
	switch o := obj.(type) {
	case *Pod:
		defaultPodSpec(&o.Spec)
	case *Deployment:
		defaultDeployment(o)
	case *Revision:
		defaultPodSpec(&o.Template.Spec)
	case *Service:
		defaultService(o)
	case *Node:
		canonicalList(o.Status.Capacity)
		canonicalList(o.Status.Allocatable)
	case *Lease:
		if o.Spec.LeaseDurationSeconds == 0 {
			o.Spec.LeaseDurationSeconds = DefaultLeaseDurationSeconds
		}
	case *Event:
		if o.Type == "" {
			o.Type = EventNormal
		}
		if o.Count == 0 {
			o.Count = 1
		}
	case *Namespace:
		if o.Status.Phase == "" {
			o.Status.Phase = NamespaceActive
		}
	}
}

// The namespace phases.
const (
	NamespaceActive      = "Active"
	NamespaceTerminating = "Terminating"
)

func defaultPodSpec(s *PodSpec) {
	if s.RestartPolicy == "" {
		s.RestartPolicy = RestartAlways
	}
	if s.TerminationGracePeriodSeconds == nil {
		v := DefaultTerminationGracePeriodSeconds
		s.TerminationGracePeriodSeconds = &v
	}
	for i := range s.Containers {
		c := &s.Containers[i]
		for j := range c.Ports {
			if c.Ports[j].Protocol == "" {
				c.Ports[j].Protocol = ProtocolTCP
			}
		}
		canonicalList(c.Resources.Requests)
		canonicalList(c.Resources.Limits)
		// A limit without a request reserves what it allows, as
		// Kubernetes does, so the scheduler never overcommits it.
		for name, lim := range c.Resources.Limits {
			if _, ok := c.Resources.Requests[name]; !ok {
				if c.Resources.Requests == nil {
					c.Resources.Requests = ResourceList{}
				}
				c.Resources.Requests[name] = lim
			}
		}
		defaultProbe(c.ReadinessProbe)
		defaultProbe(c.LivenessProbe)
	}
}

func defaultProbe(p *Probe) {
	if p == nil {
		return
	}
	if p.PeriodSeconds == 0 {
		p.PeriodSeconds = DefaultProbePeriodSeconds
	}
	if p.TimeoutSeconds == 0 {
		p.TimeoutSeconds = DefaultProbeTimeoutSeconds
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = DefaultProbeSuccessThreshold
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = DefaultProbeFailureThreshold
	}
	if p.HTTPGet != nil {
		if p.HTTPGet.Path == "" {
			p.HTTPGet.Path = "/"
		}
		if p.HTTPGet.Scheme == "" {
			p.HTTPGet.Scheme = "HTTP"
		}
	}
}

func canonicalList(l ResourceList) {
	for name, q := range l {
		if c, err := q.Canonical(name); err == nil {
			l[name] = c
		}
	}
}

func defaultDeployment(d *Deployment) {
	s := &d.Spec
	if s.Replicas == nil {
		v := DefaultReplicas
		s.Replicas = &v
	}
	if len(s.Selector) == 0 && len(s.Template.Metadata.Labels) > 0 {
		s.Selector = map[string]string{}
		for k, v := range s.Template.Metadata.Labels {
			s.Selector[k] = v
		}
	}
	if s.Strategy.Type == "" {
		s.Strategy.Type = StrategyRollingUpdate
	}
	if s.Strategy.MaxSurge == nil {
		v := FromString(DefaultMaxSurge)
		s.Strategy.MaxSurge = &v
	}
	if s.Strategy.MaxUnavailable == nil {
		v := FromString(DefaultMaxUnavailable)
		s.Strategy.MaxUnavailable = &v
	}
	if s.Strategy.OnFailure == "" {
		s.Strategy.OnFailure = FailureRollback
	}
	if s.ProgressDeadlineSeconds == nil {
		v := DefaultProgressDeadlineSeconds
		s.ProgressDeadlineSeconds = &v
	}
	if s.RevisionHistoryLimit == nil {
		v := DefaultRevisionHistoryLimit
		s.RevisionHistoryLimit = &v
	}
	defaultPodSpec(&s.Template.Spec)
}

func defaultService(svc *Service) {
	s := &svc.Spec
	if s.Type == "" {
		s.Type = ServiceClusterIP
	}
	for i := range s.Ports {
		p := &s.Ports[i]
		if p.Protocol == "" {
			p.Protocol = ProtocolTCP
		}
		if p.TargetPort.IsZero() {
			p.TargetPort = FromInt(p.Port)
		}
	}
}

// SortedKeys returns a map's keys in order, for stable output.
func SortedKeys[K ~string, V any](m map[K]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	return keys
}
