-- benches/compare: a move (a new current_residence) of a random citizen,
-- one committed transaction; pgbench -D records=N.
\set i random(0, :records - 1)
UPDATE citizens SET doc = jsonb_set(doc, '{current_residence}', '"Số 9 Đường Lê Lợi, Phường Bến Nghé, Quận 1, TP. Hồ Chí Minh"')
  WHERE id = lpad(CAST(:i AS text), 12, '0');
