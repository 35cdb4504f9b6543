'use strict'
// One timer for many calls that share a timeout, instead of a setTimeout/clearTimeout pair per
// call (about 0.4 µs of JS-thread CPU each, measured: a tenth of a whole call at c=64).
//
// Calls with the same timeout expire in the order they were made, so they wait in a FIFO and
// one timer is armed for the oldest. Calls answered in the meantime are dropped from the front
// as answers arrive (`trim`), so the queue holds about as many calls as are in flight.
//
// When the timer armed for call A fires, "now" is the later of A's deadline and `Date.now()`:
// every call due by then expires, and the next timer waits from then to the next deadline. So a
// timer that fires late does not push later deadlines back (a drift that would add up, call after
// call, under load), and fake timers drive it as they drive a per-call setTimeout: with `Date`
// faked too, the clock moves with them; with only `setTimeout` faked, the real clock stands
// nearly still and A's deadline stands in for it (no re-arming against a clock that does not
// move). The global `setTimeout` is read each time a timer is armed.
//
// When the last call is answered the timer is not cleared but unref'd (it no longer keeps the
// process alive), and the next call refs it again. Clearing and re-arming once per call at c=1
// removed and re-created Node's timer list for that duration each time (measured: ~3 % of a c=1
// call's Node CPU on redis://). A timer kept this way fires before the new call is due (it was
// armed earlier, for the same duration); it then reads the clock alone, finds nothing due and
// waits for the oldest call's deadline.

/**
 * The calls of one timeout value. A call is any object with `settled` (true once answered or
 * expired), `expire()` (gives the timeout answer) and a `deadline` slot this queue fills.
 */
class DeadlineQueue {
  #timeoutMs
  #calls = []
  #head = 0
  #timer = null
  #armedFor = 0
  /** The timer is armed but unref'd: no call waits. */
  #idle = false
  #fire = () => this.#expireDue()

  constructor(timeoutMs) {
    this.#timeoutMs = timeoutMs
  }

  /** Starts `call`'s countdown; `now` is `Date.now()` at the call. */
  add(call, now) {
    call.deadline = now + this.#timeoutMs
    this.#calls.push(call)
    if (this.#timer === null) this.#arm(this.#timeoutMs, call.deadline)
    else if (this.#idle) {
      this.#idle = false
      this.#armedFor = -Infinity // it stands for no call's deadline now
      this.#timer.ref?.()
    }
  }

  /** Forgets answered calls at the front; lets the timer go idle when none is left. */
  trim() {
    const calls = this.#calls
    let head = this.#head
    while (head < calls.length && calls[head].settled) calls[head++] = undefined
    if (head === calls.length) {
      if (head > 0) {
        calls.length = 0
        this.#head = 0
      }
      if (this.#timer !== null && !this.#idle) {
        this.#idle = true
        this.#timer.unref?.()
      }
      return
    }
    // Answers come mostly in order, so the live part is short: copy it down now and then.
    if (head > 1024 && head * 2 > calls.length) {
      this.#calls = calls.slice(head)
      head = 0
    }
    this.#head = head
  }

  #arm(delayMs, deadline) {
    this.#idle = false
    this.#armedFor = deadline
    this.#timer = setTimeout(this.#fire, Math.max(0, delayMs))
  }

  #expireDue() {
    this.#timer = null
    const due = Math.max(this.#armedFor, Date.now())
    const calls = this.#calls
    let head = this.#head
    while (head < calls.length) {
      const call = calls[head]
      if (!call.settled) {
        if (call.deadline > due) break
        call.expire()
      }
      calls[head++] = undefined
    }
    this.#head = head
    this.trim()
    if (this.#head < this.#calls.length) {
      const next = this.#calls[this.#head].deadline
      this.#arm(next - due, next)
    }
  }
}

module.exports = { DeadlineQueue }
