#pragma once
/// @file The one SQLite layer of every qtos store (policy database, strategy repository, model registry, ledger):
/// open with WAL and the store's pragmas, recognise the file as this store (application id and tables) or name it as
/// foreign, run schema migrations, prepared statements whose step loop tells a row, done and failed apart (a failure
/// throws naming the file; a damaged page never reads as an empty store), and immediate transactions.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace qtos::store {

/// A store file cannot be opened, is not the expected store, is damaged, or a statement failed. what() names the
/// store kind, the file and SQLite's reason.
class StoreError : public std::runtime_error {
 public:
  /// `code`: SQLite's primary result code (SQLITE_CORRUPT, SQLITE_NOTADB, SQLITE_FULL...), 0 when not from SQLite.
  StoreError(const std::string& message, int code) : std::runtime_error(message), code_(code) {}
  /// SQLite's primary result code, 0 when the error is not SQLite's.
  int code() const { return code_; }
  /// True when the file is damaged or not a database (restore from a backup; not a transient condition).
  bool damaged() const;

 private:
  int code_;
};

class Db;

/// One schema step: takes the store from version `to - 1` to `to`. Run inside the opening transaction.
struct Migration {
  int to = 0;                        ///< the version after this step (1, 2, ...)
  std::function<void(Db&)> apply;    ///< the step; must tolerate a legacy file that already has its tables
};

/// What a store is: how its files are recognised and brought to the current version.
struct Schema {
  std::string kind;                   ///< "strategy repository", for messages
  std::uint32_t application_id = 0;   ///< PRAGMA application_id stamped on the store's files (non-zero)
  std::vector<std::string> tables;    ///< tables that identify a file written before application ids were stamped
  std::vector<Migration> migrations;  ///< in order; the last `to` is the current version
  /// The current version (the last migration's `to`).
  int version() const { return migrations.empty() ? 0 : migrations.back().to; }
};

/// How much to check a file when it is opened.
enum class OpenCheck { none, quick, full };

/// Whether opening may create the file.
enum class OpenMode { create, existing };

/// How to open a store.
struct OpenOptions {
  OpenMode mode = OpenMode::create;  ///< existing: a missing file is an error (list verbs never create empty stores)
  bool synchronous_full = false;     ///< PRAGMA synchronous=FULL (else NORMAL, durable in WAL up to the last sync)
  OpenCheck check = OpenCheck::quick;  ///< PRAGMA quick_check / integrity_check at open
  int busy_timeout_ms = 5000;        ///< how long a writer waits for another process's lock
  bool foreign_keys = true;          ///< PRAGMA foreign_keys=ON
};

/// A prepared statement. bind() by 1-based index; step() returns true for a row and false when done, and throws
/// StoreError naming the file on anything else. Columns by 0-based index. A handle from Db::cached() borrows the
/// connection's cached statement and resets it when it goes away; one from Db::prepare() owns its statement.
class Stmt {
 public:
  /// Owns `stmt` when `busy` is null; else borrows a cached statement and clears `*busy` when destroyed.
  Stmt(const Db& db, sqlite3_stmt* stmt, bool* busy = nullptr);
  ~Stmt();
  Stmt(Stmt&& other) noexcept;
  Stmt& operator=(Stmt&&) = delete;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, std::string_view text);   ///< binds text (copied)
  Stmt& bind(int i, const char* text) { return bind(i, std::string_view(text)); }  ///< binds text (copied)
  Stmt& bind(int i, const std::string& text) { return bind(i, std::string_view(text)); }  ///< binds text (copied)
  Stmt& bind(int i, std::int64_t v);          ///< binds an integer
  Stmt& bind(int i, std::int32_t v) { return bind(i, std::int64_t{v}); }  ///< binds an integer
  Stmt& bind(int i, std::uint64_t v);         ///< binds an integer (asserts it fits in int64)
  Stmt& bind(int i, double v);                ///< binds a real
  Stmt& bind_null(int i);                     ///< binds NULL
  /// Advances: true when a row is available, false when done; throws StoreError on a failure (never "done").
  bool step();
  /// Steps a statement that returns no row (INSERT, UPDATE, DDL); throws StoreError when it fails or returns a row.
  void run();
  /// Resets for another execution (bindings kept).
  void reset();
  /// Rows changed by the last run() of this statement's connection.
  std::int64_t changes() const;

  std::int64_t int_at(int i) const;   ///< integer column
  double real_at(int i) const;        ///< real column
  std::string text_at(int i) const;   ///< text column ("" for NULL); embedded NULs kept
  bool null_at(int i) const;          ///< true when the column is NULL

 private:
  const Db* db_;
  sqlite3_stmt* stmt_;
  bool* busy_;  ///< the cache entry's in-use flag of a borrowed statement, null for an owned one
};

/// BEGIN IMMEDIATE ... COMMIT; rolled back when the scope is left without commit() (an exception or an early return).
class Transaction {
 public:
  explicit Transaction(Db& db);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  /// Commits; throws StoreError (and rolls back) when the commit fails.
  void commit();

 private:
  Db& db_;
  bool done_ = false;
};

/// An open store file. Not thread-safe: a store that is shared between threads holds a mutex around its use.
class Db {
 public:
  /// Opens `path` as `schema` (creating it unless `opts.mode` is existing), switches to WAL, checks it and migrates it to the
  /// current version inside one transaction. ":memory:" opens a private in-memory store (no file, no WAL). Throws StoreError naming the file when it is missing (and may not be created), a
  /// directory, not a database, damaged, another application's or another qtos store's file, or of a newer version.
  Db(std::string path, const Schema& schema, const OpenOptions& opts = {});
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  /// Prepares `sql` into a statement of its own (for one-off statements); throws StoreError naming the file.
  Stmt prepare(std::string_view sql) const;
  /// The connection's cached statement for `sql`, prepared on first use and reset (bindings cleared) for this use:
  /// the form for statements a store runs again and again. A nested use of the same SQL while a handle is alive gets a
  /// statement of its own, so handles never disturb each other.
  Stmt cached(std::string_view sql) const;
  /// Runs one or more statements that return no rows; throws StoreError naming the file.
  void exec(std::string_view sql);
  /// The first column of the first row of `sql` as an integer (0 when there is no row).
  std::int64_t query_int(std::string_view sql) const;
  /// True when a table (or view) `name` exists.
  bool table_exists(std::string_view name) const;
  /// True when `table` has a column `column`.
  bool column_exists(std::string_view table, std::string_view column) const;
  /// Changes made by the last statement.
  std::int64_t changes() const;

  /// The file's path.
  const std::string& path() const { return path_; }
  /// The store kind ("strategy repository").
  const std::string& kind() const { return kind_; }
  /// The raw handle, for the rare call this layer does not wrap.
  sqlite3* handle() const { return db_; }
  /// Throws StoreError "<kind> '<path>': <what>: <SQLite's message>" for the connection's last error `rc`.
  [[noreturn]] void fail(int rc, std::string_view what) const;

 private:
  void recognise(const Schema& schema);
  void migrate(const Schema& schema);
  struct Cached {
    sqlite3_stmt* stmt = nullptr;
    bool busy = false;
  };
  std::string path_, kind_;
  sqlite3* db_ = nullptr;
  mutable std::map<std::string, Cached, std::less<>> cache_;
};

/// The store kind a qtos application id names ("policy database"), or empty when it is not one of ours.
std::string_view store_kind_of(std::uint32_t application_id);

/// Application ids of the qtos stores ('q','t' then two letters), registered here so files cannot be confused.
inline constexpr std::uint32_t kAppIdPolicy = 0x71745043;      ///< "qtPC": policy database
inline constexpr std::uint32_t kAppIdStrategies = 0x71745352;  ///< "qtSR": strategy repository
inline constexpr std::uint32_t kAppIdModels = 0x71744D52;      ///< "qtMR": model registry
inline constexpr std::uint32_t kAppIdLedger = 0x71744C47;      ///< "qtLG": trading ledger

}  // namespace qtos::store
