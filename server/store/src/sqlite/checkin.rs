//! Check-ins, the hot path, on SQLite.

use super::*;

impl CheckIns for SqliteStore {
    /// Both from memory: the product keys accepted since the database last
    /// changed, and the devices known to hold their seats.
    async fn first_look(&self, product_key: &str, code: &str, serial: &str) -> Result<FirstLook> {
        let Some(org) = self.authenticate_product(product_key).await? else { return Ok(FirstLook::UnknownKey) };
        Ok(FirstLook::Arrived { org, held: self.held_seat(org, code, serial) })
    }

    async fn check_in_held(&self, code: &str, serial: &str, seat: HeldSeat) -> Result<CheckIn> {
        let now = now();
        // `last seen` first, then the check that no change took seats away
        // since the seat was read (see `HeldSeats::unchanged_since`).
        self.last_seen.seen(seat.device_id, millis(now));
        if !self.held_seats.unchanged_since(Generation(seat.seen)) {
            return self.decide_in_group(seat.org, code, serial, false).await;
        }
        Ok(CheckIn::held(code, serial, &seat, now))
    }

    #[tracing::instrument(skip_all)]
    async fn check_in_or_wait(&self, org: OrgId, code: &str, serial: &str, queue: bool) -> Result<CheckIn> {
        validate::serial(serial)?;
        if let Some(seat) = self.held_seat(org, code, serial) {
            return self.check_in_held(code, serial, seat).await;
        }
        self.decide_in_group(org, code, serial, queue).await
    }

    #[tracing::instrument(skip_all)]
    async fn release(&self, org: OrgId, code: &str, serial: &str) -> Result<bool> {
        validate::serial(serial)?;
        let now = now();
        let mut tx = self.write().await?;
        let product = fetch_product_to_decide(&mut tx, org, code).await?.ok_or_else(|| StoreError::UnknownProduct(code.to_owned()))?;
        let freed: Option<i64> = sqlx::query_scalar(
            "delete from assignments
             where product_id = ? and lease_until is not null
               and device_id = (select id from devices where org_id = ? and serial = ?)
             returning device_id",
        )
        .bind(product.id)
        .bind(org.0)
        .bind(serial)
        .fetch_optional(&mut *tx)
        .await?;
        if freed.is_none() {
            return Ok(false);
        }
        sqlx::query("update products set assigned = assigned - 1 where id = ?").bind(product.id).execute(&mut *tx).await?;
        record(&mut tx, org, now, audit::seat_released(code, serial)).await?;
        // Under the write lock, before the commit (see `HeldSeats::forget`).
        self.held_seats.forget(org, code, serial);
        tx.commit().await?;
        Ok(true)
    }
}

impl SqliteStore {
    /// The check-in decided in the next group commit, whatever memory holds.
    pub(crate) async fn decide(&self, org: OrgId, code: &str, serial: &str, queue: bool) -> Result<CheckIn> {
        validate::serial(serial)?;
        self.decide_in_group(org, code, serial, queue).await
    }

    async fn decide_in_group(&self, org: OrgId, code: &str, serial: &str, queue: bool) -> Result<CheckIn> {
        let (reply, answer) = oneshot::channel();
        let pending = PendingCheckIn { org, code: code.to_owned(), serial: serial.to_owned(), queue, reply };
        self.check_ins.send(pending).await.map_err(|_| StoreError::Unavailable("the store is shutting down".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("the check-in was dropped".into()))?
    }
}

/// A device's check-in waiting for the next group commit.
pub(super) struct PendingCheckIn {
    org: OrgId,
    code: String,
    serial: String,
    queue: bool,
    reply: oneshot::Sender<Result<CheckIn>>,
}

/// A device of the group as [`decide_group`] reads it back: id, organization,
/// serial, first and last seen, the products it holds (each with its
/// seat's lease end, if floating) and those it has had revoked.
pub(super) type RecordedRow = (i64, i64, String, i64, i64, Vec<(i64, Option<i64>)>, Vec<i64>);

/// Group commit: the check-ins that arrive while one transaction is being
/// written are decided together in the next, one after another (so the seat
/// rule sees each decision before the next), and committed with a single
/// fsync. Each caller hears its answer only after that commit, so a device
/// told "licensed" never loses its seat to a crash.
pub(super) async fn group_commit(
    writer: SqlitePool,
    mut queue: mpsc::Receiver<PendingCheckIn>,
    group_max: usize,
    known: Arc<HeldSeats>,
    keys: Arc<KnownProductKeys>,
) {
    loop {
        // The first check-in to arrive and every other one already waiting.
        let mut group = Vec::with_capacity(group_max);
        if queue.recv_many(&mut group, group_max).await == 0 {
            return; // The store is gone.
        }
        let generation = known.generation();
        match decide_group(&writer, &keys, &group, now()).await {
            Ok(answers) => {
                // Committed: the devices that hold their seats can be answered
                // from memory next time.
                let holdings = group.iter().zip(&answers).filter_map(|(pending, answer)| {
                    let decision = answer.as_ref().ok().filter(|decision| decision.check_in.licensed)?;
                    let (device_id, first_seen) = (decision.device_id?, decision.check_in.first_seen?);
                    let holding = Holding::new(device_id, millis(first_seen), decision.lease);
                    Some((pending.org, pending.code.as_str(), pending.serial.as_str(), holding))
                });
                known.remember(generation, holdings.collect::<Vec<_>>());
                for (pending, answer) in group.into_iter().zip(answers) {
                    let _ = pending.reply.send(answer.map(|decision| decision.check_in));
                }
            }
            Err(error) => {
                tracing::error!(%error, size = group.len(), "a group of check-ins failed; none was recorded");
                for pending in group {
                    let _ = pending.reply.send(Err(StoreError::Unavailable(error.to_string())));
                }
            }
        }
    }
}

/// One transaction for the whole group, a few statements for all its
/// check-ins (see [`crate::group`]). A check-in refused for its own input (an
/// unknown product) gets its error and changes nothing; a database error
/// rolls the whole group back.
pub(super) async fn decide_group(
    writer: &SqlitePool,
    keys: &KnownProductKeys,
    pending: &[PendingCheckIn],
    decided_at: Timestamp,
) -> Result<Vec<group::Answer>> {
    let at = millis(decided_at);
    let group: Vec<Asked> =
        pending.iter().map(|p| Asked { org: p.org, code: p.code.as_str(), serial: p.serial.as_str(), queue: p.queue }).collect();
    let (mut tx, counter) = begin_check_in_write(writer, keys).await?;

    // Nothing else writes while the group holds the write lock, so the seat
    // counts read here stay true until the commit.
    let wanted = group::products_wanted(&group);
    let mut products = HashMap::with_capacity(wanted.len());
    for (org, code) in wanted {
        if let Some(product) = fetch_product_to_decide(&mut tx, org, code).await? {
            products.insert((org, code), product);
        }
    }

    // Every device recorded unless its serial is on the ignore list, and its
    // last seen moved.
    let to_record = group::devices_to_record(&group, &products);
    let asked = json(to_record.iter().map(|(org, serial)| (org.0, serial)))?;
    // The group's (organization, serial) pairs, and "not on the ignore list",
    // as every statement below writes them (static text: nothing is built per
    // group).
    macro_rules! asked {
        () => {
            "(select value ->> 0 as org_id, value ->> 1 as serial from json_each(?1)) asked"
        };
    }
    macro_rules! not_ignored {
        () => {
            "not exists (select 1 from ignored_serials i where i.org_id = asked.org_id and i.serial = asked.serial)"
        };
    }
    sqlx::query(concat!(
        "insert into devices (org_id, serial, first_seen)
         select asked.org_id, asked.serial, ?2 from ", asked!(), " where ", not_ignored!(), "
         on conflict (org_id, serial) do nothing"
    ))
    .bind(&asked)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    sqlx::query(concat!(
        "insert into device_seen (device_id, last_seen)
         select d.id, ?2 from ", asked!(), " join devices d on d.org_id = asked.org_id and d.serial = asked.serial
         where ", not_ignored!(), "
         on conflict (device_id) do update set last_seen = max(device_seen.last_seen, excluded.last_seen)"
    ))
    .bind(&asked)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    // The devices, with the products each holds and has had revoked, as one
    // JSON value: one row crosses from SQLite's thread instead of one per
    // device and statement.
    let recorded: String = sqlx::query_scalar(concat!(
        "select json_group_array(json_array(d.id, d.org_id, d.serial, d.first_seen, coalesce(ds.last_seen, ?2),
                    json(coalesce((select json_group_array(json_array(a.product_id, a.lease_until)) from assignments a where a.device_id = d.id), '[]')),
                    json(coalesce((select json_group_array(r.product_id) from revocations r where r.device_id = d.id), '[]'))))
         from ", asked!(), " join devices d on d.org_id = asked.org_id and d.serial = asked.serial
         left join device_seen ds on ds.device_id = d.id
         where ", not_ignored!()
    ))
    .bind(&asked)
    .bind(at)
    .fetch_one(&mut *tx)
    .await?;
    let recorded: Vec<RecordedRow> =
        serde_json::from_str(&recorded).map_err(|error| StoreError::Unavailable(error.to_string()))?;
    let devices: HashMap<(OrgId, &str), Recorded> = recorded
        .iter()
        .map(|(id, org, serial, first_seen, last_seen, _, _)| {
            let device = Recorded { id: *id, first_seen: timestamp(*first_seen), last_seen: timestamp(*last_seen) };
            ((OrgId(*org), serial.as_str()), device)
        })
        .collect();
    let products_of: HashMap<i64, (&[(i64, Option<i64>)], &[i64])> =
        recorded.iter().map(|(id, .., held, revoked)| (*id, (held.as_slice(), revoked.as_slice()))).collect();
    let standings: HashMap<(i64, i64), Standing> = group::pairs_to_look_up(&group, &products, &devices)
        .into_iter()
        .map(|(product, device)| {
            let (held, revoked) = products_of.get(&device).copied().unwrap_or_default();
            let seat = held.iter().find(|(id, _)| *id == product);
            let standing = Standing {
                held: seat.is_some(),
                revoked: revoked.contains(&product),
                lease_until: seat.and_then(|(_, until)| until.map(timestamp)),
            };
            ((product, device), standing)
        })
        .collect();

    // A floating product a device may take a seat of first frees its ended leases.
    let freeing = group::freeing_ended_leases(&group, &products, &devices, &standings, decided_at);
    if !freeing.is_empty() {
        let keep: Vec<i64> = devices.values().map(|device| device.id).collect();
        for ((org, _), row) in products.iter_mut().filter(|(_, row)| freeing.contains(&row.id)) {
            row.product.assigned -= free_ended_leases(&mut tx, *org, row, decided_at, &keep).await?;
        }
    }

    let mut lines = group::Lines::new();
    for (id, cutoff) in group::lines_needed(&group, &products, decided_at) {
        let line: Vec<i64> = sqlx::query_scalar(
            "select device_id from waiting where product_id = ? and last_asked > ? order by since, device_id",
        )
        .bind(id)
        .bind(millis(cutoff))
        .fetch_all(&mut *tx)
        .await?;
        lines.insert(id, line);
    }

    let decided = group::decide(&group, &products, &devices, &standings, &lines, decided_at);
    if !decided.joined.is_empty() {
        // The back of the line, from now (a row left by a device that had
        // stopped asking is replaced).
        sqlx::query(
            "insert into waiting (product_id, device_id, since, last_asked)
             select value ->> 0, value ->> 1, ?2, ?2 from json_each(?1) where true
             on conflict (product_id, device_id) do update set since = excluded.since, last_asked = excluded.last_asked",
        )
        .bind(json(decided.joined.iter())?)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    }
    if !decided.waiting.is_empty() {
        sqlx::query(
            "update waiting set last_asked = ?2
             where (product_id, device_id) in (select value ->> 0, value ->> 1 from json_each(?1))",
        )
        .bind(json(decided.waiting.iter())?)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    }
    if !decided.refused.is_empty() {
        sqlx::query(
            "insert into refusals (product_id, day, device_id, count)
             select value ->> 0, ?2, value ->> 1, value ->> 2 from json_each(?1) where true
             on conflict (product_id, day, device_id) do update set count = refusals.count + excluded.count",
        )
        .bind(json(decided.refused.iter().map(|((product, device), count)| (product, device, count)))?)
        .bind(day_of(decided_at))
        .execute(&mut *tx)
        .await?;
        // Counted on the product too, for the `checkin.refused` alert.
        sqlx::query(
            "update products set refused_total = refused_total + refused.count
             from (select value ->> 0 as product_id, sum(value ->> 1) as count from json_each(?) group by 1) refused
             where products.id = refused.product_id",
        )
        .bind(json(decided.refused_per_product().into_iter())?)
        .execute(&mut *tx)
        .await?;
    }
    if !decided.served.is_empty() {
        sqlx::query(
            "delete from waiting where (product_id, device_id) in (select value ->> 0, value ->> 1 from json_each(?))",
        )
        .bind(json(decided.served.iter())?)
        .execute(&mut *tx)
        .await?;
    }
    if !decided.renewed.is_empty() {
        let renewed = decided.renewed.iter().map(|seat| (seat.product_id, seat.device_id, seat.until.millis()));
        sqlx::query(
            "update assignments set lease_until = renewed.until
             from (select value ->> 0 as product_id, value ->> 1 as device_id, value ->> 2 as until from json_each(?)) renewed
             where assignments.product_id = renewed.product_id and assignments.device_id = renewed.device_id",
        )
        .bind(json(renewed)?)
        .execute(&mut *tx)
        .await?;
    }
    if !decided.taken.is_empty() {
        for (product, taken) in decided.taken_per_product() {
            let counted = sqlx::query("update products set assigned = assigned + ?2 where id = ?1 and assigned + ?2 <= seats")
                .bind(product)
                .bind(taken)
                .execute(&mut *tx)
                .await?;
            if counted.rows_affected() != 1 {
                return Err(group::seats_moved(product));
            }
        }
        sqlx::query(
            "insert into assignments (product_id, device_id, assigned_at, lease_until)
             select value ->> 0, value ->> 1, ?2, value ->> 2 from json_each(?1)",
        )
        .bind(json(decided.taken.iter().map(|seat| (seat.product_id, seat.device_id, seat.lease.map(|l| l.until.millis()))))?)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let seats = json(decided.taken.iter().map(|seat| (seat.org.0, seat.code, seat.serial)))?;
        sqlx::query(
            "insert into activity (org_id, at, actor, kind, product, serial)
             select value ->> 0, ?2, ?3, ?4, value ->> 1, value ->> 2 from json_each(?1)",
        )
        .bind(&seats)
        .bind(at)
        .bind(Actor::Device.as_str())
        .bind(ActivityKind::SeatAutoAssigned.as_str())
        .execute(&mut *tx)
        .await?;
        super::webhooks::enqueue_auto_assigned(&mut tx, &seats, at).await?;
    }
    // Every device read was written (its last seen, at least).
    commit_check_in_write(tx, keys, counter, !recorded.is_empty()).await?;
    Ok(decided.answers)
}

/// A write transaction of the check-in path (a group's decisions, `last
/// seen` times), which changes no organization, and the database's change
/// counter read once it holds the write lock.
pub(super) async fn begin_check_in_write(writer: &SqlitePool, keys: &KnownProductKeys) -> Result<(Tx, Option<u32>)> {
    let tx = writer.begin_with("begin immediate").await?;
    Ok((tx, keys.version()))
}

/// Commits a [`begin_check_in_write`] transaction; when it `wrote` rows, the
/// product keys known before it stay known after it ([`KnownProductKeys::carry_over`]).
pub(super) async fn commit_check_in_write(tx: Tx, keys: &KnownProductKeys, counter: Option<u32>, wrote: bool) -> Result<()> {
    tx.commit().await?;
    if wrote {
        keys.carry_over(counter);
    }
    Ok(())
}

/// A group's rows as one JSON array, for `json_each`: one statement and one
/// bound value for the whole group, however large.
pub(super) fn json<T: serde::Serialize>(rows: impl Iterator<Item = T>) -> Result<String> {
    let rows: Vec<T> = rows.collect();
    serde_json::to_string(&rows).map_err(|error| StoreError::Unavailable(error.to_string()))
}

/// Writes waiting `last seen` times (by device id, in id order): one
/// statement and one transaction per thousand devices, so check-ins waiting
/// for the writer are not held up long.
pub(super) async fn write_last_seen(writer: &SqlitePool, keys: &KnownProductKeys, batch: Vec<(i64, i64)>) -> Result<()> {
    for chunk in batch.chunks(1000) {
        let (mut tx, counter) = begin_check_in_write(writer, keys).await?;
        let written = sqlx::query(
            "update device_seen set last_seen = max(device_seen.last_seen, seen.at)
             from (select value ->> 0 as id, value ->> 1 as at from json_each(?)) seen
             where device_seen.device_id = seen.id",
        )
        .bind(json(chunk.iter())?)
        .execute(&mut *tx)
        .await?;
        commit_check_in_write(tx, keys, counter, written.rows_affected() > 0).await?;
    }
    Ok(())
}
