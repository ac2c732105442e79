package framework

import (
	"context"
	"sort"
	"strconv"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/berth-io/berth/control/api"
)

// Conversions between the Terraform models and api objects. expand*
// builds api values from a plan or configuration (unknown values read as
// empty); flatten* builds models from what the control plane holds, taking
// a prior model (state or plan, may be nil) only to keep the user's choice
// between an empty and an absent collection and the spelling of quantities.

func stringMap(m types.Map) map[string]string {
	if m.IsNull() || m.IsUnknown() {
		return nil
	}
	out := map[string]string{}
	for k, v := range m.Elements() {
		if s, ok := v.(basetypes.StringValuable); ok {
			sv, _ := s.ToStringValue(context.Background())
			if !sv.IsUnknown() && !sv.IsNull() {
				out[k] = sv.ValueString()
			}
		}
	}
	return out
}

func mapValue(m map[string]string, prior types.Map) types.Map {
	if len(m) == 0 {
		if !prior.IsNull() && !prior.IsUnknown() && len(prior.Elements()) == 0 {
			return types.MapValueMust(types.StringType, map[string]attr.Value{})
		}
		return types.MapNull(types.StringType)
	}
	elems := make(map[string]attr.Value, len(m))
	for k, v := range m {
		elems[k] = types.StringValue(v)
	}
	return types.MapValueMust(types.StringType, elems)
}

func stringList(l types.List) []string {
	if l.IsNull() || l.IsUnknown() {
		return nil
	}
	var out []string
	for _, v := range l.Elements() {
		if s, ok := v.(types.String); ok {
			out = append(out, s.ValueString())
		}
	}
	return out
}

func listValue(s []string, prior types.List) types.List {
	if len(s) == 0 {
		if !prior.IsNull() && !prior.IsUnknown() && len(prior.Elements()) == 0 {
			return types.ListValueMust(types.StringType, []attr.Value{})
		}
		return types.ListNull(types.StringType)
	}
	elems := make([]attr.Value, len(s))
	for i, v := range s {
		elems[i] = types.StringValue(v)
	}
	return types.ListValueMust(types.StringType, elems)
}

func intOrString(s types.String) api.IntOrString {
	v := s.ValueString()
	if n, err := strconv.ParseInt(v, 10, 32); err == nil {
		return api.FromInt(int32(n))
	}
	return api.FromString(v)
}

func optString(s string) types.String {
	if s == "" {
		return types.StringNull()
	}
	return types.StringValue(s)
}

func quantities(m types.Map) api.ResourceList {
	if m.IsNull() || m.IsUnknown() {
		return nil
	}
	out := api.ResourceList{}
	for k, v := range stringMap(m) {
		out[api.ResourceName(k)] = api.Quantity(v)
	}
	return out
}

func quantityMapValue(l api.ResourceList, prior types.Map) types.Map {
	if len(l) == 0 {
		if !prior.IsNull() && !prior.IsUnknown() && len(prior.Elements()) == 0 {
			return types.MapValueMust(QuantityType{}, map[string]attr.Value{})
		}
		return types.MapNull(QuantityType{})
	}
	elems := make(map[string]attr.Value, len(l))
	for k, v := range l {
		elems[string(k)] = NewQuantityValue(string(v))
	}
	return types.MapValueMust(QuantityType{}, elems)
}

func expandPodSpec(m podSpecModel) api.PodSpec {
	s := api.PodSpec{
		RestartPolicy: api.RestartPolicy(m.RestartPolicy.ValueString()),
		NodeSelector:  stringMap(m.NodeSelector),
	}
	if !m.TerminationGracePeriodSeconds.IsNull() && !m.TerminationGracePeriodSeconds.IsUnknown() {
		v := m.TerminationGracePeriodSeconds.ValueInt64()
		s.TerminationGracePeriodSeconds = &v
	}
	for _, c := range m.Containers {
		ac := api.Container{
			Name:    c.Name.ValueString(),
			Image:   c.Image.ValueString(),
			Command: stringList(c.Command),
			Args:    stringList(c.Args),
		}
		for _, e := range c.Env {
			ac.Env = append(ac.Env, api.EnvVar{Name: e.Name.ValueString(), Value: e.Value.ValueString()})
		}
		for _, p := range c.Ports {
			ac.Ports = append(ac.Ports, api.ContainerPort{Name: p.Name.ValueString(), ContainerPort: int32(p.ContainerPort.ValueInt64()), Protocol: api.Protocol(p.Protocol.ValueString())})
		}
		if c.Resources != nil {
			ac.Resources = api.ResourceRequirements{Requests: quantities(c.Resources.Requests), Limits: quantities(c.Resources.Limits)}
		}
		ac.ReadinessProbe = expandProbe(c.ReadinessProbe)
		ac.LivenessProbe = expandProbe(c.LivenessProbe)
		s.Containers = append(s.Containers, ac)
	}
	return s
}

func expandProbe(p *probeModel) *api.Probe {
	if p == nil {
		return nil
	}
	out := &api.Probe{
		InitialDelaySeconds: int32(p.InitialDelaySeconds.ValueInt64()),
		PeriodSeconds:       int32(p.PeriodSeconds.ValueInt64()),
		TimeoutSeconds:      int32(p.TimeoutSeconds.ValueInt64()),
		SuccessThreshold:    int32(p.SuccessThreshold.ValueInt64()),
		FailureThreshold:    int32(p.FailureThreshold.ValueInt64()),
	}
	if h := p.HTTPGet; h != nil {
		out.HTTPGet = &api.HTTPGetAction{Path: h.Path.ValueString(), Port: intOrString(h.Port), Scheme: h.Scheme.ValueString()}
	}
	if t := p.TCPSocket; t != nil {
		out.TCPSocket = &api.TCPSocketAction{Port: intOrString(t.Port)}
	}
	if e := p.Exec; e != nil {
		out.Exec = &api.ExecAction{Command: stringList(e.Command)}
	}
	return out
}

func flattenPodSpec(s api.PodSpec, prior *podSpecModel) podSpecModel {
	var pr podSpecModel
	if prior != nil {
		pr = *prior
	}
	m := podSpecModel{
		RestartPolicy: types.StringValue(string(s.RestartPolicy)),
		NodeSelector:  mapValue(s.NodeSelector, pr.NodeSelector),
	}
	if s.TerminationGracePeriodSeconds != nil {
		m.TerminationGracePeriodSeconds = types.Int64Value(*s.TerminationGracePeriodSeconds)
	} else {
		m.TerminationGracePeriodSeconds = types.Int64Value(api.DefaultTerminationGracePeriodSeconds)
	}
	for i, c := range s.Containers {
		var pc containerModel
		if i < len(pr.Containers) {
			pc = pr.Containers[i]
		}
		m.Containers = append(m.Containers, flattenContainer(c, pc))
	}
	return m
}

func flattenContainer(c api.Container, prior containerModel) containerModel {
	m := containerModel{
		Name:    types.StringValue(c.Name),
		Image:   types.StringValue(c.Image),
		Command: listValue(c.Command, prior.Command),
		Args:    listValue(c.Args, prior.Args),
	}
	for _, e := range c.Env {
		m.Env = append(m.Env, envModel{Name: types.StringValue(e.Name), Value: types.StringValue(e.Value)})
	}
	if len(c.Env) == 0 && prior.Env != nil {
		m.Env = []envModel{}
	}
	for _, p := range c.Ports {
		m.Ports = append(m.Ports, containerPortModel{Name: optString(p.Name), ContainerPort: types.Int64Value(int64(p.ContainerPort)), Protocol: types.StringValue(string(p.Protocol))})
	}
	if len(c.Ports) == 0 && prior.Ports != nil {
		m.Ports = []containerPortModel{}
	}
	m.Resources = flattenResources(c.Resources, prior.Resources)
	m.ReadinessProbe = flattenProbe(c.ReadinessProbe, prior.ReadinessProbe)
	m.LivenessProbe = flattenProbe(c.LivenessProbe, prior.LivenessProbe)
	return m
}

// flattenResources undoes the one default the control plane adds to
// resources (a request equal to the limit when only the limit was given),
// unless the prior model asked for that request itself.
func flattenResources(r api.ResourceRequirements, prior *resourcesModel) *resourcesModel {
	var pr resourcesModel
	if prior != nil {
		pr = *prior
	} else {
		pr = resourcesModel{Requests: types.MapNull(QuantityType{}), Limits: types.MapNull(QuantityType{})}
	}
	priorReq := stringMap(pr.Requests)
	req := api.ResourceList{}
	for name, q := range r.Requests {
		lim, hasLim := r.Limits[name]
		if _, asked := priorReq[string(name)]; hasLim && lim == q && !asked {
			continue
		}
		req[name] = q
	}
	if len(req) == 0 && len(r.Limits) == 0 && prior == nil {
		return nil
	}
	return &resourcesModel{Requests: quantityMapValue(req, pr.Requests), Limits: quantityMapValue(r.Limits, pr.Limits)}
}

func flattenProbe(p *api.Probe, prior *probeModel) *probeModel {
	if p == nil {
		return nil
	}
	m := &probeModel{
		InitialDelaySeconds: types.Int64Value(int64(p.InitialDelaySeconds)),
		PeriodSeconds:       types.Int64Value(int64(p.PeriodSeconds)),
		TimeoutSeconds:      types.Int64Value(int64(p.TimeoutSeconds)),
		SuccessThreshold:    types.Int64Value(int64(p.SuccessThreshold)),
		FailureThreshold:    types.Int64Value(int64(p.FailureThreshold)),
	}
	if h := p.HTTPGet; h != nil {
		m.HTTPGet = &httpGetModel{Path: types.StringValue(h.Path), Port: types.StringValue(h.Port.String()), Scheme: types.StringValue(h.Scheme)}
	}
	if t := p.TCPSocket; t != nil {
		m.TCPSocket = &portModel{Port: types.StringValue(t.Port.String())}
	}
	if e := p.Exec; e != nil {
		var pc types.List
		if prior != nil && prior.Exec != nil {
			pc = prior.Exec.Command
		}
		m.Exec = &execModel{Command: listValue(e.Command, pc)}
	}
	return m
}

func sortedStrings(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// sameQuantities reports whether two quantity maps hold the same amounts
// under the same keys.
func sameQuantities(a, b types.Map) bool {
	if a.IsUnknown() || b.IsUnknown() || a.IsNull() != b.IsNull() {
		return false
	}
	am, bm := stringMap(a), stringMap(b)
	if len(am) != len(bm) || len(am) != len(a.Elements()) || len(bm) != len(b.Elements()) {
		return false
	}
	for k, v := range am {
		w, ok := bm[k]
		if !ok || !QuantitiesEqual(v, w) {
			return false
		}
	}
	return true
}

// keepQuantitySpelling plans the prior spelling of every requests or
// limits map whose amounts did not change, so "0.5" → "500m" in a
// configuration is no change. Terraform accepts a planned value equal to
// the prior one in place of the configuration's.
func keepQuantitySpelling(plan, prior []containerModel) {
	for i := range plan {
		if i >= len(prior) || plan[i].Resources == nil || prior[i].Resources == nil {
			continue
		}
		p, s := plan[i].Resources, prior[i].Resources
		if sameQuantities(p.Requests, s.Requests) {
			p.Requests = s.Requests
		}
		if sameQuantities(p.Limits, s.Limits) {
			p.Limits = s.Limits
		}
	}
}
