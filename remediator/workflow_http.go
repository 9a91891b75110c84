package remediator

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"xsha/remediator/journal"
)

// routeWorkflows adds the workflow API: starting and cancelling need the
// webhook's credentials; reading does not, like the rest of the API.
func (r *engine) routeWorkflows(m *mux.Router) {
	m.HandleFunc("/api/v1/workflows", r.handleWorkflows).Methods(http.MethodGet)
	m.HandleFunc("/api/v1/workflows", r.handleStartWorkflow).Methods(http.MethodPost)
	m.HandleFunc("/api/v1/workflows/{id:[0-9]+}", r.handleWorkflow).Methods(http.MethodGet)
	m.HandleFunc("/api/v1/workflows/{id:[0-9]+}/cancel", r.handleCancelWorkflow).Methods(http.MethodPost)
}

// handleWorkflows is GET /api/v1/workflows[?limit=N]: the recent
// workflows, newest first.
func (r *engine) handleWorkflows(w http.ResponseWriter, req *http.Request) {
	recs, err := r.recentWorkflows(limitParam(req))
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"workflows": recs})
}

// recentWorkflows returns up to limit workflows, newest first.
func (r *engine) recentWorkflows(limit int) ([]*journal.Action, error) {
	recs, err := r.recentActions(maxListLimit)
	if err != nil {
		return nil, err
	}
	out := []*journal.Action{}
	for _, a := range recs {
		if isWorkflow(a.Name) && len(out) < limit {
			out = append(out, a)
		}
	}
	return out, nil
}

// handleWorkflow is GET /api/v1/workflows/{id}: the workflow and its
// journal, oldest entry first.
func (r *engine) handleWorkflow(w http.ResponseWriter, req *http.Request) {
	id, _ := strconv.ParseUint(mux.Vars(req)["id"], 10, 64)
	var rec *journal.Action
	var entries []journal.Entry
	err := r.journal.View(func(tx journal.Tx) error {
		var err error
		if rec, err = tx.Get(id); err != nil {
			return err
		}
		entries, err = tx.EntriesFor(id)
		return err
	})
	if err == nil && !isWorkflow(rec.Name) {
		err = errors.New("not a workflow")
	}
	if err != nil {
		httpError(w, http.StatusNotFound, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"workflow": rec, "journal": entries})
}

// handleStartWorkflow is POST /api/v1/workflows with a WorkflowRequest:
// 202 with the queued workflow, 400 for a bad request, 403 when the
// policy does not allow it, 409 when the pool is busy or held; nothing
// runs then.
func (r *engine) handleStartWorkflow(w http.ResponseWriter, req *http.Request) {
	if !r.authorize(w, req) {
		return
	}
	if mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		httpError(w, http.StatusUnsupportedMediaType, "content type must be application/json")
		return
	}
	var wr WorkflowRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&wr); err != nil {
		httpError(w, http.StatusBadRequest, "decoding the workflow request: "+err.Error())
		return
	}
	rec, err := r.startWorkflow(wr, req.RemoteAddr)
	if err != nil {
		r.log.Warn("workflow refused", "workflow", wr.Workflow, "pool", wr.Pool, "host", wr.Host, "err", err, "remote", req.RemoteAddr)
		httpError(w, workflowErrorCode(err), err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"workflow": rec})
}

// handleCancelWorkflow is POST /api/v1/workflows/{id}/cancel.
func (r *engine) handleCancelWorkflow(w http.ResponseWriter, req *http.Request) {
	if !r.authorize(w, req) {
		return
	}
	id, _ := strconv.ParseUint(mux.Vars(req)["id"], 10, 64)
	rec, err := r.cancelWorkflow(id, req.RemoteAddr)
	if err != nil {
		code := workflowErrorCode(err)
		if !errors.Is(err, errBadWorkflow) && !errors.Is(err, errPoolBusy) {
			code = http.StatusNotFound
		}
		httpError(w, code, err.Error())
		return
	}
	r.log.Info("workflow cancel", "id", id, "state", rec.State, "remote", req.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]any{"workflow": rec})
}

func workflowErrorCode(err error) int {
	switch {
	case errors.Is(err, errBadWorkflow):
		return http.StatusBadRequest
	case errors.Is(err, errNotAllowed):
		return http.StatusForbidden
	case errors.Is(err, errPoolBusy):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// workflowView is a workflow as the status page shows it: every step of
// its plan, done, running or still to come.
type workflowView struct {
	*journal.Action
	StepViews []stepView
}

// stepView is one step of a workflowView.
type stepView struct {
	Name  stepName
	State string
	// Took is how long the step took, or has been running.
	Took string
}

// workflowView lists the workflow's steps in order with their state.
func (r *engine) workflowView(a *journal.Action) workflowView {
	v := workflowView{Action: a}
	spec, _ := lookupAction(a.Name)
	for _, s := range spec.steps(a.Host) {
		sv := stepView{Name: s.name, State: "to do"}
		if i := stepIndex(a.Steps, s.name); i >= 0 {
			st := a.Steps[i]
			sv.State = string(st.State)
			end := st.Finished
			if end.IsZero() && a.Open() {
				end = r.now()
			}
			if !end.IsZero() {
				sv.Took = end.Sub(st.Started).Round(time.Second).String()
			}
		} else if !a.Open() {
			sv.State = "not run"
		}
		v.StepViews = append(v.StepViews, sv)
	}
	return v
}
