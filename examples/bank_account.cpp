// bank_account: an actor that is killed again and again and keeps its
// balance, because its state is checkpointed to LMDB and restored by its
// supervisor on every restart.
//
//   supervisor (one_for_one) --- account "alice"  (ft::checkpointed_worker)
//                                    |  snapshots (Cap'n Proto envelope)
//   snapshot writer (group commit) <-'  ft::spawn_snapshot_writer, LMDB
//
// The account checkpoints after every message and answers a deposit only
// once the snapshot holding it is committed (`reply_after_checkpoint`), so
// an acknowledged deposit survives any crash. Each deposit carries an id
// (`ft::with_message_id`); the id is stored with the state, so a deposit
// replayed after a crash is answered `duplicate_message` instead of being
// booked twice.
//
// The script: 12 deposits of 10; after every third one the account is
// killed (`caf::exit_reason::kill`, no chance to clean up) and the next
// deposit waits in the supervisor's buffer until the restarted account has
// restored its snapshot. Then one deposit is replayed with its old id.
// Exits 0 if the final balance is 120 and the replay was refused, 1 if not.
//
// Usage: bank_account [--dir DIR]   (default: a fresh temp directory)

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

#include <unistd.h>

#include <caf/all.hpp>

#include "ft/all.hpp"

using namespace std::chrono_literals;

namespace {

/// `(deposit_atom, int64_t amount) -> int64_t balance`.
using deposit_atom = caf::atom_constant<caf::atom("deposit")>;

/// `(balance_atom) -> int64_t balance`.
using balance_atom = caf::atom_constant<caf::atom("balance")>;

/// The account's state. `inspect` is all the checkpointing needs.
struct account {
  int64_t balance = 0;
  uint64_t deposits = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, account& x) {
  return f(x.balance, x.deposits);
}

caf::behavior account_actor(ft::checkpointed<account>& ctx) {
  std::cout << "account: started, "
            << (ctx.restored() ? "restored from snapshot #"
                                   + std::to_string(ctx.restored_sequence())
                               : std::string{"fresh"})
            << ", balance " << ctx.state().balance << std::endl;
  return {
    [&ctx](deposit_atom, int64_t amount) {
      ctx.state().balance += amount;
      ++ctx.state().deposits;
      return ctx.state().balance;
    },
    [&ctx](balance_atom) { return ctx.state().balance; },
  };
}

} // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  fs::path dir;
  bool temp = true;
  if (argc == 3 && std::string{argv[1]} == "--dir") {
    dir = argv[2];
    temp = false;
  } else if (argc != 1) {
    std::cerr << "usage: bank_account [--dir DIR]\n";
    return 2;
  } else {
    dir = fs::temp_directory_path()
          / ("ft-bank-account-" + std::to_string(::getpid()));
    fs::remove_all(dir);
  }

  caf::actor_system_config cfg;
  cfg.add_error_category(ft::error_category, ft::render_ft_error);
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  int rc = 1;
  {
    ft::snapshot_writer_options wopts;
    wopts.dir = dir.string();
    wopts.store.mode = ft::durability::group_commit;
    auto writer = ft::spawn_snapshot_writer(sys, wopts);
    if (!writer) {
      std::cerr << "bank_account: " << ft::render(writer.error()) << '\n';
      return 1;
    }

    ft::checkpoint_options opts;
    opts.key = "account/alice";
    opts.actor_type = "account";
    opts.writer = *writer;
    opts.config.checkpoint_every = 1;
    opts.config.reply_after_checkpoint = true;
    auto spec = ft::checkpointed_worker<account>("alice", opts,
                                                 account_actor);
    ft::supervisor_flags flags;
    flags.strategy = ft::supervision_strategy::one_for_one;
    flags.intensity = 10;
    flags.period = 10s;
    auto sup = ft::spawn_supervisor(sys, flags, {spec});
    if (!sup) {
      std::cerr << "bank_account: " << ft::render(sup.error()) << '\n';
      return 1;
    }

    int64_t balance = -1;
    caf::error refused;
    auto on_error = [&](caf::error& err) {
      std::cerr << "bank_account: " << ft::render(err) << '\n';
    };
    // One deposit, through the supervisor (which buffers it while the
    // account restarts), carrying a message id.
    auto deposit = [&](const std::string& id, int64_t amount) {
      balance = -1;
      refused = caf::error{};
      ft::request_child(self, *sup, "alice", 5s,
                        ft::with_message_id(id, caf::make_message(
                                                  deposit_atom::value,
                                                  amount)))
        .receive([&](int64_t x) { balance = x; },
                 [&](caf::error& err) { refused = std::move(err); });
    };
    auto kill_account = [&] {
      ft::which_children(self, *sup, 5s)
        .receive(
          [&](const std::vector<ft::child_info>& xs) {
            for (auto& x : xs)
              if (x.id == "alice" && x.actor) {
                std::cout << "main: killing the account" << std::endl;
                self->send_exit(x.actor, caf::exit_reason::kill);
              }
          },
          on_error);
    };

    for (int i = 1; i <= 12; ++i) {
      deposit("deposit-" + std::to_string(i), 10);
      if (refused) {
        std::cerr << "bank_account: deposit " << i
                  << " failed: " << ft::render(refused) << '\n';
        break;
      }
      std::cout << "main: deposit-" << i << " of 10 -> balance " << balance
                << std::endl;
      if (i % 3 == 0)
        kill_account();
    }
    int64_t final_balance = balance;

    // A sender that did not see the answer would send the deposit again.
    deposit("deposit-12", 10);
    bool replay_refused = ft::is(refused, ft::errc::duplicate_message);
    std::cout << "main: replayed deposit-12 -> "
              << (replay_refused ? "refused as duplicate_message"
                                 : "booked again!")
              << std::endl;

    ft::request_child(self, *sup, "alice", 5s, balance_atom::value)
      .receive([&](int64_t x) { final_balance = x; }, on_error);
    std::cout << "main: final balance " << final_balance << " (expected 120)"
              << std::endl;
    rc = final_balance == 120 && replay_refused ? 0 : 1;
    self->send_exit(*sup, caf::exit_reason::user_shutdown);
    self->wait_for(*sup);
    self->send_exit(*writer, caf::exit_reason::user_shutdown);
    self->wait_for(*writer);
  }
  if (temp)
    fs::remove_all(dir);
  std::cout << (rc == 0 ? "OK" : "FAILED") << std::endl;
  return rc;
}
