package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/store"
)

// handleRollback makes an old Revision's template the deployment's
// template again and clears spec.paused; the deployment controller then
// rolls it out like any template change.
func (s *Server) handleRollback(w http.ResponseWriter, r *http.Request, rt objectRoute) {
	ctx, cancel := s.requestContext(r)
	defer cancel()
	var req api.RollbackRequest
	if err := decodeBody(w, r, s.maxBody, &req); err != nil && !isEmptyBody(err) {
		writeError(w, err)
		return
	}
	if req.Revision < 0 {
		writeError(w, api.NewError(api.ReasonBadRequest, "revision must not be negative, got %d", req.Revision))
		return
	}
	dep := namedObject(rt).(*api.Deployment)
	var errStop = errors.New("stop")
	var failure error
	err := s.store.GuaranteedUpdate(ctx, dep, false, func() error {
		rev, err := s.rollbackTarget(ctx, dep, req.Revision)
		if err != nil {
			failure = err
			return errStop
		}
		old := &api.Deployment{}
		*old = *dep
		dep.Spec.Template = rev.Template
		dep.Spec.Paused = false
		api.Default(dep)
		if errs := api.ValidateUpdate(old, dep); len(errs) > 0 {
			failure = api.NewInvalid("Deployment", api.Key(dep), errs)
			return errStop
		}
		return nil
	})
	if errors.Is(err, errStop) {
		err = failure
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, dep)
}

// rollbackTarget finds the revision to return to: the numbered one, or for
// 0 the live revision before the desired one (the newest revision older
// than the desired one when the desired one is live).
func (s *Server) rollbackTarget(ctx context.Context, dep *api.Deployment, number int64) (*api.Revision, error) {
	revs := &api.RevisionList{}
	if err := s.store.List(ctx, revs, store.ListOptions{
		Namespace: dep.Metadata.Namespace,
		Labels:    map[string]string{api.LabelDeployment: dep.Metadata.Name},
	}); err != nil {
		return nil, err
	}
	var own []*api.Revision
	for i := range revs.Items {
		rv := &revs.Items[i]
		if rv.Deployment != dep.Metadata.Name {
			continue
		}
		if c := api.ControllerOf(&rv.Metadata); c != nil && c.UID != dep.Metadata.UID {
			continue
		}
		own = append(own, rv)
	}
	want := number
	if want == 0 {
		desired, live := dep.Status.DesiredRevision, dep.Status.LiveRevision
		if live != 0 && live != desired {
			want = live
		} else {
			for _, rv := range own {
				if (desired == 0 || rv.Number < desired) && rv.Number > want {
					want = rv.Number
				}
			}
			if desired == 0 {
				// Without status, "before the desired one" is the second newest.
				want = secondNewest(own)
			}
		}
		if want == 0 {
			return nil, api.NewError(api.ReasonNotFound,
				"deployment %s has no revision before revision %d to roll back to", api.Key(dep), desired)
		}
	}
	for _, rv := range own {
		if rv.Number == want {
			return rv, nil
		}
	}
	return nil, api.NewError(api.ReasonNotFound, "deployment %s has no revision %d (revisions beyond the history limit are removed)", api.Key(dep), want)
}

func secondNewest(revs []*api.Revision) int64 {
	var first, second int64
	for _, rv := range revs {
		switch {
		case rv.Number > first:
			first, second = rv.Number, first
		case rv.Number > second && rv.Number < first:
			second = rv.Number
		}
	}
	return second
}
