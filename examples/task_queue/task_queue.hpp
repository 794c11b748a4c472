#pragma once

// The flagship demo's entity types: a distributed task queue modelled on a
// distributed test runner. A `coordinator` hands tasks to `worker`s with
// hardware labels through one circuit breaker per worker, reroutes what a
// failing worker drops, and records each finished task's effect in a
// `ledger` under the task's id as idempotency key. Workers checkpoint their
// progress after every step and heartbeat to their node's watchdog.
//
// All three speak the text protocol of `ft/cluster.hpp` (command, args) ->
// JSON text, so `ftctl entity ask` and the HTTP API drive them too:
//
// coordinator: configure LEDGER [TASK_TIMEOUT_MS]; add_worker KEY HW;
//   submit HW STEPS FIRST COUNT (tasks tNNNNN with value = their number);
//   done TASK ATTEMPT RESULT WORKER; failed TASK ATTEMPT WORKER REASON; stats
// worker: run TASK ATTEMPT STEPS VALUE COORDINATOR; cancel TASK;
//   fault crash_loop MS | fault hang | fault clear; status
// ledger: apply TASK VALUE; summary

#include "ft/cluster.hpp"

namespace task_queue {

/// Adds `coordinator`, `worker` and `ledger`.
void add_types(ft::entity_types& types);

/// Milliseconds of one work step (workers checkpoint after each).
constexpr int step_ms = 100;

/// A worker interrupted this often during one task (crashes, watchdog
/// kills, failovers) hands the task back instead of trying again.
constexpr uint32_t max_interruptions = 3;

} // namespace task_queue
