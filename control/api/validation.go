package api

import (
	"fmt"
	"net"
	"reflect"
	"regexp"
	"strconv"
	"strings"
)

var (
	dnsLabelRE   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	labelValueRE = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$`)
	labelNameRE  = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	envNameRE    = regexp.MustCompile(`^[-._a-zA-Z][-._a-zA-Z0-9]*$`)
	dnsSubRE     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// MaxNameLength is the longest name an object may have (a DNS label).
const MaxNameLength = 63

// ValidateName checks that name is a DNS label: 1-63 lower-case letters,
// digits and '-', starting and ending with a letter or digit.
func ValidateName(path Path, name string, errs *FieldErrors) {
	switch {
	case name == "":
		errs.Add(path.String(), "is required")
	case len(name) > MaxNameLength:
		errs.Add(path.String(), "must be at most %d characters, got %d", MaxNameLength, len(name))
	case !dnsLabelRE.MatchString(name):
		errs.Add(path.String(), "must be a DNS label (lower-case letters, digits and '-', starting and ending with a letter or digit), got %q", name)
	}
}

func validateLabels(path Path, labels map[string]string, errs *FieldErrors) {
	for _, k := range SortedKeys(labels) {
		v := labels[k]
		name := k
		if prefix, n, ok := strings.Cut(k, "/"); ok {
			if len(prefix) > 253 || !dnsSubRE.MatchString(prefix) {
				errs.Add(path.Key(k).String(), "key prefix must be a DNS subdomain, got %q", prefix)
			}
			name = n
		}
		if len(name) == 0 || len(name) > 63 || !labelNameRE.MatchString(name) {
			errs.Add(path.Key(k).String(), "key name must be 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, got %q", name)
		}
		if len(v) > 63 || !labelValueRE.MatchString(v) {
			errs.Add(path.Key(k).String(), "value must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, got %q", v)
		}
	}
}

func validateMeta(obj Object, errs *FieldErrors) {
	m := obj.GetMeta()
	ki := KindOf(obj)
	p := Path("metadata")
	if m.Name == "" && m.GenerateName != "" {
		// The server generates the name; check the prefix leaves room.
		if len(m.GenerateName) > MaxNameLength-5 || !dnsLabelRE.MatchString(m.GenerateName+"x") {
			errs.Add(p.Child("generateName").String(), "must be a DNS label prefix of at most %d characters, got %q", MaxNameLength-5, m.GenerateName)
		}
	} else if ki.Kind == "Member" {
		// Member names come from etcd and are not user input.
	} else {
		ValidateName(p.Child("name"), m.Name, errs)
	}
	if ki.Namespaced {
		ValidateName(p.Child("namespace"), m.Namespace, errs)
	} else if m.Namespace != "" {
		errs.Add(p.Child("namespace").String(), "must be empty: %s is not namespaced", ki.Kind)
	}
	validateLabels(p.Child("labels"), m.Labels, errs)
}

// Validate checks an object after Default and returns every problem found,
// each naming its field path and what is allowed.
func Validate(obj Object) FieldErrors {
	var errs FieldErrors
	validateMeta(obj, &errs)
	switch o := obj.(type) {
	case *Pod:
		validatePodSpec(Path("spec"), &o.Spec, &errs)
	case *Deployment:
		validateDeployment(o, &errs)
	case *Revision:
		validatePodSpec(Path("template").Child("spec"), &o.Template.Spec, &errs)
	case *Service:
		validateService(o, &errs)
	case *Node:
		validateResourceList(Path("status").Child("capacity"), o.Status.Capacity, &errs)
		validateResourceList(Path("status").Child("allocatable"), o.Status.Allocatable, &errs)
		if o.Spec.PodCIDR != "" {
			if _, _, err := net.ParseCIDR(o.Spec.PodCIDR); err != nil {
				errs.Add("spec.podCIDR", "must be a CIDR such as 10.244.1.0/24, got %q", o.Spec.PodCIDR)
			}
		}
	case *Lease:
		if o.Spec.LeaseDurationSeconds < 1 {
			errs.Add("spec.leaseDurationSeconds", "must be at least 1, got %d", o.Spec.LeaseDurationSeconds)
		}
	case *Event:
		if o.InvolvedObject.Kind == "" || o.InvolvedObject.Name == "" {
			errs.Add("involvedObject", "kind and name are required")
		}
		if o.Type != EventNormal && o.Type != EventWarning {
			errs.Add("type", "must be Normal or Warning, got %q", o.Type)
		}
		if o.Reason == "" {
			errs.Add("reason", "is required")
		}
	}
	return errs
}

func oneOf[T ~string](path Path, v T, allowed []T, errs *FieldErrors) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	errs.Add(path.String(), "must be one of %s, got %q", strings.Join(names, ", "), v)
}

func validatePort(path Path, port int32, errs *FieldErrors) {
	if port < 1 || port > 65535 {
		errs.Add(path.String(), "must be 1-65535, got %d", port)
	}
}

func validatePodSpec(p Path, s *PodSpec, errs *FieldErrors) {
	if len(s.Containers) == 0 {
		errs.Add(p.Child("containers").String(), "must have at least one container")
	}
	oneOf(p.Child("restartPolicy"), s.RestartPolicy, RestartPolicies, errs)
	validateLabels(p.Child("nodeSelector"), s.NodeSelector, errs)
	if s.NodeName != "" && !dnsLabelRE.MatchString(s.NodeName) {
		errs.Add(p.Child("nodeName").String(), "must be a node name (DNS label), got %q", s.NodeName)
	}
	if g := s.TerminationGracePeriodSeconds; g != nil && (*g < 0 || *g > 3600) {
		errs.Add(p.Child("terminationGracePeriodSeconds").String(), "must be 0-3600, got %d", *g)
	}
	names := map[string]bool{}
	for i := range s.Containers {
		c := &s.Containers[i]
		cp := p.Child("containers").Index(i)
		ValidateName(cp.Child("name"), c.Name, errs)
		if names[c.Name] {
			errs.Add(cp.Child("name").String(), "duplicate container name %q: names must be unique within a pod", c.Name)
		}
		names[c.Name] = true
		if strings.TrimSpace(c.Image) == "" {
			errs.Add(cp.Child("image").String(), "is required (an OCI image reference such as registry:5000/team/web:v1)")
		} else if strings.ContainsAny(c.Image, " \t\n") {
			errs.Add(cp.Child("image").String(), "must not contain white space, got %q", c.Image)
		}
		portNames := map[string]bool{}
		for j, port := range c.Ports {
			pp := cp.Child("ports").Index(j)
			validatePort(pp.Child("containerPort"), port.ContainerPort, errs)
			oneOf(pp.Child("protocol"), port.Protocol, Protocols, errs)
			if port.Name != "" {
				if len(port.Name) > 15 || !dnsLabelRE.MatchString(port.Name) {
					errs.Add(pp.Child("name").String(), "must be a DNS label of at most 15 characters, got %q", port.Name)
				}
				if portNames[port.Name] {
					errs.Add(pp.Child("name").String(), "duplicate port name %q", port.Name)
				}
				portNames[port.Name] = true
			}
		}
		for j, e := range c.Env {
			if !envNameRE.MatchString(e.Name) {
				errs.Add(cp.Child("env").Index(j).Child("name").String(), "must be a valid environment variable name, got %q", e.Name)
			}
		}
		rp := cp.Child("resources")
		validateResourceList(rp.Child("requests"), c.Resources.Requests, errs)
		validateResourceList(rp.Child("limits"), c.Resources.Limits, errs)
		for name, lim := range c.Resources.Limits {
			req, ok := c.Resources.Requests[name]
			if !ok {
				continue
			}
			lv, err1 := lim.MilliValue()
			rv, err2 := req.MilliValue()
			if err1 == nil && err2 == nil && rv > lv {
				errs.Add(rp.Child("requests").Key(string(name)).String(), "must not exceed the limit %s, got %s", lim, req)
			}
		}
		validateProbe(cp.Child("readinessProbe"), c.ReadinessProbe, c, errs)
		validateProbe(cp.Child("livenessProbe"), c.LivenessProbe, c, errs)
	}
}

func validateResourceList(p Path, l ResourceList, errs *FieldErrors) {
	for _, k := range SortedKeys(l) {
		name := ResourceName(k)
		if name != ResourceCPU && name != ResourceMemory && name != ResourcePods {
			errs.Add(p.Key(k).String(), "unknown resource %q: use cpu or memory", k)
			continue
		}
		if _, err := ParseQuantity(string(l[name])); err != nil {
			errs.Add(p.Key(k).String(), "%v", err)
		}
	}
}

func validateProbe(p Path, pr *Probe, c *Container, errs *FieldErrors) {
	if pr == nil {
		return
	}
	n := 0
	if pr.HTTPGet != nil {
		n++
		validateProbePort(p.Child("httpGet").Child("port"), pr.HTTPGet.Port, c, errs)
		if pr.HTTPGet.Scheme != "HTTP" && pr.HTTPGet.Scheme != "HTTPS" {
			errs.Add(p.Child("httpGet").Child("scheme").String(), "must be HTTP or HTTPS, got %q", pr.HTTPGet.Scheme)
		}
		if !strings.HasPrefix(pr.HTTPGet.Path, "/") {
			errs.Add(p.Child("httpGet").Child("path").String(), "must start with '/', got %q", pr.HTTPGet.Path)
		}
	}
	if pr.TCPSocket != nil {
		n++
		validateProbePort(p.Child("tcpSocket").Child("port"), pr.TCPSocket.Port, c, errs)
	}
	if pr.Exec != nil {
		n++
		if len(pr.Exec.Command) == 0 {
			errs.Add(p.Child("exec").Child("command").String(), "must name a command")
		}
	}
	if n != 1 {
		errs.Add(p.String(), "must set exactly one of httpGet, tcpSocket and exec, got %d", n)
	}
	for _, f := range []struct {
		name string
		v    int32
		min  int32
	}{
		{"initialDelaySeconds", pr.InitialDelaySeconds, 0},
		{"periodSeconds", pr.PeriodSeconds, 1},
		{"timeoutSeconds", pr.TimeoutSeconds, 1},
		{"successThreshold", pr.SuccessThreshold, 1},
		{"failureThreshold", pr.FailureThreshold, 1},
	} {
		if f.v < f.min {
			errs.Add(p.Child(f.name).String(), "must be at least %d, got %d", f.min, f.v)
		}
	}
}

func validateProbePort(p Path, port IntOrString, c *Container, errs *FieldErrors) {
	if !port.IsString {
		validatePort(p, port.IntVal, errs)
		return
	}
	for _, cp := range c.Ports {
		if cp.Name == port.StrVal {
			return
		}
	}
	errs.Add(p.String(), "names port %q, but container %q has no port of that name", port.StrVal, c.Name)
}

// ResolveIntOrPercent turns maxSurge or maxUnavailable into a number of pods
// for a given replica count; percentages round up when roundUp is set
// (maxSurge) and down otherwise (maxUnavailable).
func ResolveIntOrPercent(v IntOrString, total int32, roundUp bool) (int32, error) {
	if !v.IsString {
		return v.IntVal, nil
	}
	s := strings.TrimSuffix(v.StrVal, "%")
	if s == v.StrVal {
		return 0, fmt.Errorf("must be a number or a percentage such as 25%%, got %q", v.StrVal)
	}
	pct, err := strconv.Atoi(s)
	if err != nil || pct < 0 || pct > 100 {
		return 0, fmt.Errorf("must be a percentage 0%%-100%%, got %q", v.StrVal)
	}
	n := int64(pct) * int64(total)
	if roundUp {
		return int32((n + 99) / 100), nil
	}
	return int32(n / 100), nil
}

func validateDeployment(d *Deployment, errs *FieldErrors) {
	s := &d.Spec
	p := Path("spec")
	if s.Replicas != nil && (*s.Replicas < 0 || *s.Replicas > 10000) {
		errs.Add(p.Child("replicas").String(), "must be 0-10000, got %d", *s.Replicas)
	}
	if len(s.Selector) == 0 {
		errs.Add(p.Child("selector").String(), "must select pods by label: set spec.template.metadata.labels (the selector defaults to them)")
	}
	validateLabels(p.Child("selector"), s.Selector, errs)
	validateLabels(p.Child("template").Child("metadata").Child("labels"), s.Template.Metadata.Labels, errs)
	if !SelectorMatches(s.Selector, s.Template.Metadata.Labels) {
		errs.Add(p.Child("selector").String(), "must match the template's labels %v, got %v", s.Template.Metadata.Labels, s.Selector)
	}
	validatePodSpec(p.Child("template").Child("spec"), &s.Template.Spec, errs)
	if s.Template.Spec.NodeName != "" {
		errs.Add(p.Child("template").Child("spec").Child("nodeName").String(), "must be empty: the scheduler places a deployment's pods")
	}
	if s.Template.Spec.RestartPolicy != RestartAlways {
		errs.Add(p.Child("template").Child("spec").Child("restartPolicy").String(), "must be Always for a deployment's pods, got %q", s.Template.Spec.RestartPolicy)
	}
	sp := p.Child("strategy")
	if s.Strategy.Type != StrategyRollingUpdate {
		errs.Add(sp.Child("type").String(), "must be %s, got %q", StrategyRollingUpdate, s.Strategy.Type)
	}
	oneOf(sp.Child("onFailure"), s.Strategy.OnFailure, FailurePolicies, errs)
	replicas := int32(1)
	if s.Replicas != nil {
		replicas = *s.Replicas
	}
	var surge, unavail int32
	var surgeOK, unavailOK bool
	if s.Strategy.MaxSurge != nil {
		v, err := ResolveIntOrPercent(*s.Strategy.MaxSurge, replicas, true)
		if err != nil {
			errs.Add(sp.Child("maxSurge").String(), "%v", err)
		} else if v < 0 {
			errs.Add(sp.Child("maxSurge").String(), "must not be negative, got %d", v)
		} else {
			surge, surgeOK = v, true
		}
	}
	if s.Strategy.MaxUnavailable != nil {
		v, err := ResolveIntOrPercent(*s.Strategy.MaxUnavailable, replicas, false)
		if err != nil {
			errs.Add(sp.Child("maxUnavailable").String(), "%v", err)
		} else if v < 0 {
			errs.Add(sp.Child("maxUnavailable").String(), "must not be negative, got %d", v)
		} else {
			unavail, unavailOK = v, true
		}
	}
	if surgeOK && unavailOK && surge == 0 && unavail == 0 && replicas > 0 {
		errs.Add(sp.String(), "maxSurge and maxUnavailable must not both be 0: the rollout could never make progress (set maxSurge to 1 to replace pods one at a time without losing capacity)")
	}
	if s.MinReadySeconds < 0 {
		errs.Add(p.Child("minReadySeconds").String(), "must not be negative, got %d", s.MinReadySeconds)
	}
	if v := s.ProgressDeadlineSeconds; v != nil && *v <= s.MinReadySeconds {
		errs.Add(p.Child("progressDeadlineSeconds").String(), "must be greater than minReadySeconds (%d), got %d", s.MinReadySeconds, *v)
	}
	if v := s.RevisionHistoryLimit; v != nil && *v < 0 {
		errs.Add(p.Child("revisionHistoryLimit").String(), "must not be negative, got %d", *v)
	}
}

func validateService(svc *Service, errs *FieldErrors) {
	s := &svc.Spec
	p := Path("spec")
	oneOf(p.Child("type"), s.Type, ServiceTypes, errs)
	validateLabels(p.Child("selector"), s.Selector, errs)
	if len(s.Ports) == 0 {
		errs.Add(p.Child("ports").String(), "must have at least one port")
	}
	if s.ClusterIP != "" && net.ParseIP(s.ClusterIP).To4() == nil {
		errs.Add(p.Child("clusterIP").String(), "must be an IPv4 address, got %q", s.ClusterIP)
	}
	names := map[string]bool{}
	seen := map[string]bool{}
	for i, port := range s.Ports {
		pp := p.Child("ports").Index(i)
		validatePort(pp.Child("port"), port.Port, errs)
		oneOf(pp.Child("protocol"), port.Protocol, Protocols, errs)
		if len(s.Ports) > 1 && port.Name == "" {
			errs.Add(pp.Child("name").String(), "is required when a service has several ports")
		}
		if port.Name != "" {
			if !dnsLabelRE.MatchString(port.Name) {
				errs.Add(pp.Child("name").String(), "must be a DNS label, got %q", port.Name)
			}
			if names[port.Name] {
				errs.Add(pp.Child("name").String(), "duplicate port name %q", port.Name)
			}
			names[port.Name] = true
		}
		key := fmt.Sprintf("%d/%s", port.Port, port.Protocol)
		if seen[key] {
			errs.Add(pp.Child("port").String(), "duplicate port %s", key)
		}
		seen[key] = true
		if port.TargetPort.IsString {
			if !dnsLabelRE.MatchString(port.TargetPort.StrVal) || len(port.TargetPort.StrVal) > 15 {
				errs.Add(pp.Child("targetPort").String(), "must be a port number or a container port name, got %q", port.TargetPort.StrVal)
			}
		} else {
			validatePort(pp.Child("targetPort"), port.TargetPort.IntVal, errs)
		}
		if port.NodePort != 0 {
			if s.Type != ServiceNodePort {
				errs.Add(pp.Child("nodePort").String(), "may only be set when spec.type is NodePort")
			} else if port.NodePort < NodePortRange[0] || port.NodePort > NodePortRange[1] {
				errs.Add(pp.Child("nodePort").String(), "must be %d-%d, got %d", NodePortRange[0], NodePortRange[1], port.NodePort)
			}
		}
	}
}

// ValidateUpdate checks what may not change between the stored object old
// and the update new (both defaulted), on top of Validate(new).
func ValidateUpdate(old, new Object) FieldErrors {
	errs := Validate(new)
	om, nm := old.GetMeta(), new.GetMeta()
	if om.Name != nm.Name || om.Namespace != nm.Namespace {
		errs.Add("metadata.name", "cannot change (from %q to %q): create a new object instead", Key(old), Key(new))
	}
	switch o := old.(type) {
	case *Pod:
		n := new.(*Pod)
		os, ns := o.Spec, n.Spec
		if os.NodeName == "" && ns.NodeName != "" {
			// Binding: the one change a pod's spec allows.
			os.NodeName = ns.NodeName
		}
		if os.NodeName != ns.NodeName {
			errs.Add("spec.nodeName", "cannot change once the pod is bound (bound to %q)", o.Spec.NodeName)
		} else if !reflect.DeepEqual(os, ns) {
			errs.Add("spec", "a pod's spec cannot change: delete the pod and create a new one (deployments do this for you)")
		}
	case *Service:
		n := new.(*Service)
		if o.Spec.ClusterIP != "" && n.Spec.ClusterIP != "" && o.Spec.ClusterIP != n.Spec.ClusterIP {
			errs.Add("spec.clusterIP", "cannot change (allocated %s): delete and re-create the service to get another", o.Spec.ClusterIP)
		}
	case *Revision:
		n := new.(*Revision)
		if o.TemplateHash != n.TemplateHash || !reflect.DeepEqual(o.Template, n.Template) {
			errs.Add("template", "a revision is immutable")
		}
	case *Node:
		n := new.(*Node)
		if o.Spec.PodCIDR != "" && n.Spec.PodCIDR != o.Spec.PodCIDR {
			errs.Add("spec.podCIDR", "cannot change once allocated (%s)", o.Spec.PodCIDR)
		}
	}
	return errs
}
