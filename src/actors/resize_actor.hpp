// The per-task resize actor: spawned detached by a node's agent (its own
// thread, so libvips never blocks CAF's scheduler), answers one resize_job
// with one resize_done, then quits. It reads the job's bytes in place: the
// message is shared with its sender, never copied.
//
//   spawned ──resize_job──▶ running libvips ──resize_done──▶ quit
#pragma once

#include <string>

#include <caf/event_based_actor.hpp>

#include "actors/messages.hpp"
#include "imaging/options.hpp"

namespace resized::actors {

/// Runs the imaging pipeline for one job (plain function, no actor).
resize_done run_resize_job(const resize_job& job, const imaging::limits& lim,
                           const std::string& node);

caf::behavior resize_actor(caf::event_based_actor* self, imaging::limits lim,
                           std::string node);

} // namespace resized::actors
