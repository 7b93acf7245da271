// A resize worker: spawned detached by a node's agent (its own thread, so
// libvips never blocks CAF's scheduler); answers each resize_job with one
// resize_done, one job at a time. It reads the job's bytes in place: the
// message is shared with its sender, never copied. It has no limits of its
// own: each job carries the policy of the API node that accepted it.
//
//   idle ──resize_job──▶ running libvips ──resize_done──▶ idle
#pragma once

#include <string>

#include <caf/event_based_actor.hpp>

#include "actors/messages.hpp"
#include "imaging/options.hpp"

namespace resized::actors {

/// Runs the imaging pipeline for one job under the job's own policy
/// (`job.policy`; plain function, no actor).
resize_done run_resize_job(const resize_job& job, const std::string& node);

/// `nice`: the worker thread's CPU priority is lowered by this much, so the
/// HTTP io threads (parse, answer 202) win the cores under load.
caf::behavior resize_actor(caf::event_based_actor* self, std::string node,
                           int nice);

} // namespace resized::actors
