package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/gorilla/mux"

	"xsha/sim/xapisim"
)

// maxControlBody bounds control API request bodies.
const maxControlBody = 1 << 16

// Handler returns the control API:
//
//	GET  /v1/state                              the state document
//	GET  /v1/stats                              sessions and calls per host
//	POST /v1/hosts/{host}/power-off             hard power loss
//	POST /v1/hosts/{host}/power-on              boot
//	POST /v1/hosts/{host}/isolate               cut the management network
//	POST /v1/hosts/{host}/reconnect             restore it
//	POST /v1/hosts/{host}/heartbeat-sr/unplug   unplug the heartbeat SR's PBD
//	POST /v1/hosts/{host}/heartbeat-sr/plug     plug it again
//	POST /v1/hosts/{host}/required-pif/unplug   unplug a disallow_unplug PIF
//	POST /v1/hosts/{host}/required-pif/plug     plug it again
//	POST /v1/hosts/{host}/xapi-restart          restart xapi (toolstack)
//	POST /v1/hosts/{host}/boot-hold             stall the host's next reboot
//	POST /v1/hosts/{host}/boot-release          let a stalled reboot boot
//	POST /v1/pools/{pool}/ha-disable            disable pool HA out of band
//	POST /v1/vms/{vm}/ha-restart-priority       {"priority": "restart"|"best-effort"|""}
//	POST /v1/vms/{vm}/migration-fault           {"fail": true|false} (XAPI side)
//	POST /v1/cloudstack/vms/{vm}/migration-fault {"fail": true|false}
//	POST /v1/cloudstack/alert-wait              {"seconds": 60} or {"seconds": null}
//
// Successful POSTs answer {"status":"ok"}; errors {"error": "..."} with 400
// (bad request body), 404 (unknown host, pool or VM), 409 (not possible in
// the current state) or 503 (CloudStack not running).
func (l *Lab) Handler() http.Handler {
	r := mux.NewRouter()
	r.HandleFunc("/v1/state", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, l.State())
	}).Methods(http.MethodGet)
	r.HandleFunc("/v1/stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, l.Stats())
	}).Methods(http.MethodGet)
	hostOps := map[string]func(string) error{
		"power-off":           l.PowerOff,
		"power-on":            l.PowerOn,
		"isolate":             l.Isolate,
		"reconnect":           l.Reconnect,
		"heartbeat-sr/unplug": l.UnplugHeartbeatSR,
		"heartbeat-sr/plug":   l.PlugHeartbeatSR,
		"required-pif/unplug": l.UnplugRequiredPIF,
		"required-pif/plug":   l.PlugRequiredPIF,
		"xapi-restart":        l.RestartXAPI,
		"boot-hold":           l.HoldBoot,
		"boot-release":        l.ReleaseBoot,
	}
	for path, op := range hostOps {
		r.HandleFunc("/v1/hosts/{host}/"+path, func(w http.ResponseWriter, req *http.Request) {
			respond(w, op(mux.Vars(req)["host"]))
		}).Methods(http.MethodPost)
	}
	r.HandleFunc("/v1/pools/{pool}/ha-disable", func(w http.ResponseWriter, req *http.Request) {
		respond(w, l.disablePoolHA(req.Context(), mux.Vars(req)["pool"]))
	}).Methods(http.MethodPost)
	r.HandleFunc("/v1/vms/{vm}/ha-restart-priority", func(w http.ResponseWriter, req *http.Request) {
		var body struct {
			Priority *string `json:"priority"`
		}
		if err := decodeBody(req, &body); err != nil || body.Priority == nil {
			writeError(w, http.StatusBadRequest, `body must be {"priority": "restart"|"best-effort"|""}`)
			return
		}
		respond(w, l.SetVMHARestartPriority(mux.Vars(req)["vm"], *body.Priority))
	}).Methods(http.MethodPost)
	for path, op := range map[string]func(string, bool) error{
		"/v1/vms/{vm}/migration-fault":            l.SetVMMigrationFault,
		"/v1/cloudstack/vms/{vm}/migration-fault": l.SetCloudStackMigrationFault,
	} {
		r.HandleFunc(path, func(w http.ResponseWriter, req *http.Request) {
			var body struct {
				Fail *bool `json:"fail"`
			}
			if err := decodeBody(req, &body); err != nil || body.Fail == nil {
				writeError(w, http.StatusBadRequest, `body must be {"fail": true|false}`)
				return
			}
			respond(w, op(mux.Vars(req)["vm"], *body.Fail))
		}).Methods(http.MethodPost)
	}
	r.HandleFunc("/v1/cloudstack/alert-wait", func(w http.ResponseWriter, req *http.Request) {
		var body struct {
			Seconds *int `json:"seconds"`
		}
		if err := decodeBody(req, &body); err != nil {
			writeError(w, http.StatusBadRequest, `body must be {"seconds": N} or {"seconds": null}`)
			return
		}
		respond(w, l.SetAlertWait(body.Seconds))
	}).Methods(http.MethodPost)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint")
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
	})
	return r
}

func decodeBody(req *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(req.Body, maxControlBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decoding body: %w", err)
	}
	return nil
}

func respond(w http.ResponseWriter, err error) {
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	case errors.Is(err, xapisim.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, xapisim.ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, ErrNoCloudStack):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) //nolint:errcheck // client gone
}
