// The smallest libft program: one supervisor, one child. Crashes the child
// once and checks that the supervisor replaced it. Exits with 0 on success.

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <thread>

#include <caf/all.hpp>

#include "ft/all.hpp"

using namespace std::chrono_literals;

namespace {

using ping_atom = caf::atom_constant<caf::atom("ping")>;

caf::behavior echo(caf::event_based_actor*) {
  return {
    [](ping_atom) { return std::string{"pong"}; },
  };
}

/// The handle of child `id`, or an invalid handle if it is not running.
caf::actor child_of(caf::scoped_actor& self, const caf::actor& sup,
                    const std::string& id) {
  caf::actor result;
  ft::which_children(self, sup, 2s)
    .receive(
      [&](std::vector<ft::child_info>& rows) {
        for (auto& row : rows)
          if (row.id == id && row.state == ft::child_state::running)
            result = row.actor;
      },
      [](caf::error&) {});
  return result;
}

int run(caf::actor_system& sys) {
  ft::supervisor_flags flags;
  flags.name = "consumer";
  auto sup = ft::spawn_supervisor(sys, flags,
                                  {ft::worker("echo", ft::start_fun(echo))});
  if (!sup) {
    std::cerr << "spawn_supervisor: " << ft::render(sup.error()) << '\n';
    return EXIT_FAILURE;
  }
  caf::scoped_actor self{sys};
  auto before = child_of(self, *sup, "echo");
  if (!before) {
    std::cerr << "echo is not running\n";
    return EXIT_FAILURE;
  }
  // Crash the child: an abnormal exit, so the permanent child is restarted.
  caf::anon_send_exit(before, caf::exit_reason::kill);
  // Poll for the replacement (at most 5 s).
  caf::actor after;
  for (int i = 0; i < 500 && (!after || after == before); ++i) {
    std::this_thread::sleep_for(10ms);
    after = child_of(self, *sup, "echo");
  }
  int rc = EXIT_SUCCESS;
  if (!after || after == before) {
    std::cerr << "echo was not restarted\n";
    rc = EXIT_FAILURE;
  } else {
    std::string reply;
    ft::request_child(self, *sup, "echo", 2s, ping_atom::value)
      .receive([&](std::string& x) { reply = x; }, [](caf::error&) {});
    if (reply != "pong") {
      std::cerr << "the new echo does not answer\n";
      rc = EXIT_FAILURE;
    } else {
      std::cout << "echo restarted: actor #" << before.id() << " -> #"
                << after.id() << '\n';
    }
  }
  self->send_exit(*sup, caf::exit_reason::user_shutdown);
  self->wait_for(*sup);
  return rc;
}

} // namespace

int main() {
  caf::actor_system_config cfg;
  cfg.add_error_category(ft::error_category, ft::render_ft_error);
  caf::actor_system sys{cfg};
  return run(sys);
}
