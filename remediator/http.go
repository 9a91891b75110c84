package remediator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"xsha/remediator/journal"
)

// router serves the remediator's HTTP side, with gorilla/mux as the
// design names: the Alertmanager webhook, the JSON API (actions, journal,
// holds), the status page (statuspage.go) and the health endpoints.
// App.Handler adds /metrics. This file holds the handlers and the
// authentication of the requests that can make the remediator act.
func (r *engine) router() *mux.Router {
	m := mux.NewRouter()
	m.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "Healthy\n")
	})
	m.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !r.ready() {
			http.Error(w, "Not ready: the pool runners have not started", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "Ready\n")
	})
	m.HandleFunc("/webhook", r.handleWebhook)
	m.HandleFunc("/api/v1/actions", r.handleActions).Methods(http.MethodGet)
	m.HandleFunc("/api/v1/actions/{id:[0-9]+}", r.handleAction).Methods(http.MethodGet)
	m.HandleFunc("/api/v1/journal", r.handleJournal).Methods(http.MethodGet)
	m.HandleFunc("/api/v1/holds", r.handleHolds).Methods(http.MethodGet)
	m.HandleFunc("/api/v1/holds", r.handleSetHold).Methods(http.MethodPost)
	m.HandleFunc("/api/v1/holds", r.handleDeleteHold).Methods(http.MethodDelete)
	m.HandleFunc("/api/v1/breaker", r.handleBreaker).Methods(http.MethodGet)
	m.HandleFunc("/api/v1/breaker/reset", r.handleBreakerReset).Methods(http.MethodPost)
	r.routeWorkflows(m)
	m.HandleFunc("/", r.handleStatus).Methods(http.MethodGet)
	m.HandleFunc("/static/status.js", handleStatusJS).Methods(http.MethodGet)
	return m
}

// authenticated reports whether the request carries valid credentials;
// when it does not, it sets the WWW-Authenticate challenge of the answer.
func (r *engine) authenticated(w http.ResponseWriter, req *http.Request) bool {
	if r.auth.Authenticate(req) {
		return true
	}
	if c := r.auth.Challenge(); c != "" {
		w.Header().Set("WWW-Authenticate", c)
	}
	return false
}

// authorize answers 401 unless the request carries valid credentials.
func (r *engine) authorize(w http.ResponseWriter, req *http.Request) bool {
	if r.authenticated(w, req) {
		return true
	}
	httpError(w, http.StatusUnauthorized, "authentication required")
	return false
}

// handleWebhook is POST /webhook. It answers 200 once every alert of the
// message and the decision about it are on disk, 503 when they could not be
// recorded (Alertmanager then retries), and 4xx for requests that are not
// authenticated, well-formed Alertmanager messages; nothing runs then.
func (r *engine) handleWebhook(w http.ResponseWriter, req *http.Request) {
	reject := func(result webhookResult, code int, msg string) {
		r.metrics.webhooks.WithLabelValues(string(result)).Inc()
		r.log.Warn("webhook rejected", "result", result, "code", code, "reason", msg, "remote", req.RemoteAddr)
		httpError(w, code, msg)
	}
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reject(webhookMethodNotAllowed, http.StatusMethodNotAllowed, "use POST")
		return
	}
	if !r.authenticated(w, req) {
		reject(webhookUnauthorized, http.StatusUnauthorized, "authentication required")
		return
	}
	if mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		reject(webhookUnsupportedType, http.StatusUnsupportedMediaType, "content type must be application/json")
		return
	}
	msg, err := decodeMessage(http.MaxBytesReader(w, req.Body, r.maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			reject(webhookTooLarge, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", r.maxBody))
			return
		}
		reject(webhookBadRequest, http.StatusBadRequest, err.Error())
		return
	}
	verdicts, err := r.intake(msg, req.RemoteAddr)
	r.noteJournal(err)
	if err != nil {
		r.metrics.webhooks.WithLabelValues(string(webhookJournalError)).Inc()
		r.log.Error("webhook not recorded", "err", err, "group_key", msg.GroupKey)
		httpError(w, http.StatusServiceUnavailable, "could not record the alerts; retry: "+err.Error())
		return
	}
	r.metrics.webhooks.WithLabelValues(string(webhookAccepted)).Inc()
	r.log.Info("webhook accepted", "group_key", msg.GroupKey, "alerts", len(msg.Alerts),
		"truncated", msg.TruncatedAlerts, "reason", msg.NotificationReason, "remote", req.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]any{"status": "accepted", "alerts": verdicts})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func httpError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"status": "error", "error": msg})
}

const (
	defaultListLimit = 50
	maxListLimit     = 1000
)

func limitParam(req *http.Request) int {
	n, err := strconv.Atoi(req.URL.Query().Get("limit"))
	if err != nil || n <= 0 {
		return defaultListLimit
	}
	return min(n, maxListLimit)
}

// recentActions returns up to limit actions, newest first.
func (r *engine) recentActions(limit int) ([]*journal.Action, error) {
	var recs []*journal.Action
	err := r.journal.View(func(tx journal.Tx) error {
		var err error
		recs, err = tx.Recent(limit)
		return err
	})
	return recs, err
}

// handleActions is GET /api/v1/actions[?limit=N].
func (r *engine) handleActions(w http.ResponseWriter, req *http.Request) {
	recs, err := r.recentActions(limitParam(req))
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if recs == nil {
		recs = []*journal.Action{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"actions": recs})
}

// handleAction is GET /api/v1/actions/{id}: the action and its journal.
func (r *engine) handleAction(w http.ResponseWriter, req *http.Request) {
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
	if err != nil {
		httpError(w, http.StatusNotFound, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"action": rec, "journal": entries})
}

// handleJournal is GET /api/v1/journal[?after=SEQ&limit=N]: journal
// entries in order.
func (r *engine) handleJournal(w http.ResponseWriter, req *http.Request) {
	after, _ := strconv.ParseUint(req.URL.Query().Get("after"), 10, 64)
	var entries []journal.Entry
	err := r.journal.View(func(tx journal.Tx) error {
		var err error
		entries, err = tx.Entries(after, limitParam(req))
		return err
	})
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if entries == nil {
		entries = []journal.Entry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": entries})
}

func (r *engine) handleHolds(w http.ResponseWriter, _ *http.Request) {
	holds, err := r.holdsView()
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"holds": holds})
}

// holdRequest is the body of POST /api/v1/holds.
type holdRequest struct {
	// Pool to hold; empty holds every pool.
	Pool   string `json:"pool"`
	Reason string `json:"reason"`
}

func (r *engine) handleSetHold(w http.ResponseWriter, req *http.Request) {
	if !r.authorize(w, req) {
		return
	}
	var hr holdRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&hr); err != nil {
		httpError(w, http.StatusBadRequest, "decoding hold: "+err.Error())
		return
	}
	if err := r.setHold(hr.Pool, hr.Reason); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, errUnknownPool) {
			code = http.StatusBadRequest
		}
		httpError(w, code, err.Error())
		return
	}
	r.log.Info("hold set", "pool", hr.Pool, "reason", hr.Reason, "remote", req.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]string{"status": "held"})
}

func (r *engine) handleDeleteHold(w http.ResponseWriter, req *http.Request) {
	if !r.authorize(w, req) {
		return
	}
	pool := req.URL.Query().Get("pool")
	found, err := r.liftHold(pool)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if !found {
		httpError(w, http.StatusNotFound, "no hold set through the API for this pool")
		return
	}
	r.log.Info("hold lifted", "pool", pool, "remote", req.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]string{"status": "lifted"})
}

// handleBreaker is GET /api/v1/breaker: the storm guard's breaker.
func (r *engine) handleBreaker(w http.ResponseWriter, _ *http.Request) {
	b, err := r.breakerView()
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"breaker": b})
}

// handleBreakerReset is POST /api/v1/breaker/reset, authenticated like the
// hold API: it closes the breaker and starts counting afresh.
func (r *engine) handleBreakerReset(w http.ResponseWriter, req *http.Request) {
	if !r.authorize(w, req) {
		return
	}
	was, err := r.resetBreaker(req.RemoteAddr)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	status := "closed"
	if !was {
		status = "was not open"
	}
	r.log.Warn("breaker reset", "was_open", was, "remote", req.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]string{"status": status})
}
