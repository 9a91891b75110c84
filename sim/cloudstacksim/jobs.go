package cloudstacksim

import (
	"time"
)

// Async job statuses (JobInfo.Status ordinals).
const (
	jobInProgress = 0
	jobSucceeded  = 1
	jobFailed     = 2
)

// Java command classes, as queryAsyncJobResult reports them in "cmd".
const (
	cmdPrepareMaintenance = "org.apache.cloudstack.api.command.admin.host.PrepareForMaintenanceCmd"
	cmdCancelMaintenance  = "org.apache.cloudstack.api.command.admin.host.CancelMaintenanceCmd"
	cmdReconnectHost      = "org.apache.cloudstack.api.command.admin.host.ReconnectHostCmd"
)

// job is an asynchronous job on a host.
type job struct {
	id         string
	cmd        string
	host       *host
	created    time.Time
	due        time.Time
	completed  time.Time
	status     int
	resultCode int
	result     any
	run        func(now time.Time) *apiError
}

type asyncStartResponse struct {
	JobID string `json:"jobid"`
}

type jobFailure struct {
	ErrorCode int    `json:"errorcode"`
	ErrorText string `json:"errortext"`
}

type asyncJobResponse struct {
	AccountID       string `json:"accountid"`
	UserID          string `json:"userid"`
	Cmd             string `json:"cmd"`
	JobStatus       int    `json:"jobstatus"`
	JobProcStatus   int    `json:"jobprocstatus"`
	JobResultCode   int    `json:"jobresultcode"`
	JobResultType   string `json:"jobresulttype,omitempty"`
	JobResult       any    `json:"jobresult,omitempty"`
	JobInstanceType string `json:"jobinstancetype"`
	JobInstanceID   string `json:"jobinstanceid"`
	Created         string `json:"created"`
	Completed       string `json:"completed,omitempty"`
	JobID           string `json:"jobid"`
}

// startJob queues run on h; it runs once the job time has passed.
func (s *Server) startJob(cmd string, h *host, run func(now time.Time) *apiError) any {
	now := s.now()
	j := &job{
		id: randomUUID(), cmd: cmd, host: h, created: now,
		due: now.Add(s.real(s.opts.JobTime)), status: jobInProgress, run: run,
	}
	s.jobs[j.id] = j
	s.jobOrder = append(s.jobOrder, j)
	h.pending = j
	return asyncStartResponse{JobID: j.id}
}

// runJobs completes the jobs that are due, oldest first.
func (s *Server) runJobs(now time.Time) {
	for _, j := range s.jobOrder {
		if j.status != jobInProgress || now.Before(j.due) {
			continue
		}
		j.completed = now
		if err := j.run(now); err != nil {
			j.status, j.resultCode = jobFailed, err.code
			j.result = jobFailure{ErrorCode: err.code, ErrorText: err.text}
			s.logger.Info("CloudStack job failed", "job", j.id, "host", j.host.name, "err", err.text)
		} else {
			j.status, j.resultCode = jobSucceeded, 0
			j.result = map[string]any{"host": s.hostResponse(j.host)}
		}
		if j.host.pending == j {
			j.host.pending = nil
		}
	}
}

func (s *Server) jobResponse(j *job) asyncJobResponse {
	r := asyncJobResponse{
		AccountID: nameUUID("account", adminAccount), UserID: nameUUID("user", adminAccount),
		Cmd: j.cmd, JobStatus: j.status, JobResultCode: j.resultCode,
		JobInstanceType: "Host", JobInstanceID: j.host.id,
		Created: date(j.created), JobID: j.id,
	}
	if j.status != jobInProgress {
		r.JobResultType = "object"
		r.JobResult = j.result
		r.Completed = date(j.completed)
	}
	return r
}

// reconnectJob is AgentManagerImpl.reconnect.
func (s *Server) reconnectJob(h *host) func(time.Time) *apiError {
	return func(now time.Time) *apiError {
		if h.typ != hostRouting || !h.reachable {
			return &apiError{code: codeInternalError, text: "Failed to reconnect host"}
		}
		h.lastPing = now
		h.connectingTil = now.Add(s.real(s.opts.ReconnectTime))
		s.setHostState(h, statusConnecting, now, "AgentConnected")
		return nil
	}
}
