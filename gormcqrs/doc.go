// Package gormcqrs captures the changes GORM makes to master models, and
// applies events to GORM models on replicas, without hand-written capture
// calls.
//
// # Master
//
//	plugin := gormcqrs.New(master) // master is a *cqrsync.Master[*sql.Tx] on the same database
//	db.Use(plugin)
//	plugin.Register(&Account{}, &cqrsync.MasterModel{CQRSID: "account", TrackedFields: []string{"name"}})
//
// A model is a master model when it is registered with [Plugin.Register]:
// the registration carries the options django-cqrs's mixin holds (tracked
// fields, is_sync_instance, serializer, meta), which a struct tag cannot
// hold (they are functions) and an interface method would split from the
// type's other options. Every write GORM makes to a registered model is
// captured inside GORM's own transaction, so the outbox row commits or
// rolls back with the change:
//
//   - Create (one row or a batch) publishes a SAVE per row with revision 0.
//   - Save, and Select("*").Updates, are full saves: the revision rises
//     and a SAVE is published. Updates and Update without Select("*") are
//     partial updates (django-cqrs's save(update_fields=...)): they publish
//     only when MasterConfig.AutoUpdateFields is on, or for a statement
//     marked with [UpdateCQRSFields]. An update whose WHERE matches many
//     rows captures every one: their keys are read inside the transaction
//     before the UPDATE, locked where the database can.
//   - Delete publishes a DELETE per row and records the tombstone; a soft
//     delete (a gorm.DeletedAt field, without Unscoped) is an update, as
//     Django's soft delete is a plain save.
//   - Create with clause.OnConflict (an upsert, and Save of a slice)
//     publishes a SAVE with revision 0 for each inserted row and an update
//     for each row it updated; DoNothing publishes nothing for the rows it
//     left alone.
//
// GORM's default transaction (SkipDefaultTransaction off) or db.Transaction
// must wrap each write: a write outside a transaction is refused before it
// runs. After GORM commits its own transaction the plugin wakes the relay
// (Master.Committed); after db.Transaction, call [Plugin.Transaction]
// instead, or Master.Committed yourself.
//
// The model's table keeps cqrs_revision and cqrs_updated: embed [Revision]
// so that AutoMigrate creates them and GORM never writes them itself.
//
// # Replica
//
// [ReplicaModel] derives a cqrsync.ReplicaModel from a GORM model (table,
// primary key, and a mapping from `cqrs:"field"` tags); [OnSave] and
// [OnDelete] wrap handlers that receive the event decoded into the GORM
// struct and a *gorm.DB inside the apply transaction.
package gormcqrs
