"""Codes of the IntelliVue nomenclature this client uses, with the names the Programming Guide gives them.

Only what the client reads or writes is here (object classes, attribute ids, the ECG/pleth wave
and numeric identifiers, alert codes, units); any other code is shown as hex, never guessed.
"""

from __future__ import annotations

# -- partitions (TYPE.partition) ----------------------------------------------------------
NOM_PART_OBJ = 1
NOM_PART_SCADA = 2
NOM_PART_EVT = 3
NOM_PART_DIM = 4

# -- object classes (NOM_PART_OBJ) ---------------------------------------------------------
NOM_MOC_VMO_METRIC_ENUM = 5
NOM_MOC_VMO_METRIC_NU = 6
NOM_MOC_VMO_METRIC_SA_RT = 9
NOM_MOC_VMS_MDS = 33
NOM_MOC_PT_DEMOG = 42
NOM_MOC_VMO_AL_MON = 54

# -- events and actions --------------------------------------------------------------------
NOM_NOTI_MDS_CREAT = 0x0D06
NOM_ACT_POLL_MDIB_DATA = 0x0C16
NOM_ACT_POLL_MDIB_DATA_EXT = 0xF13B

# -- attribute ids -------------------------------------------------------------------------
NOM_ATTR_AL_MON_P_AL_LIST = 0x0902
NOM_ATTR_AL_MON_T_AL_LIST = 0x0904
NOM_ATTR_DEV_AL_COND = 0x0916
NOM_ATTR_ID_ASSOC_NO = 0x091D
NOM_ATTR_ID_BED_LABEL = 0x091E
NOM_ATTR_ID_HANDLE = 0x0921
NOM_ATTR_ID_LABEL = 0x0924
NOM_ATTR_ID_LABEL_STRING = 0x0927
NOM_ATTR_ID_MODEL = 0x0928
NOM_ATTR_ID_TYPE = 0x092F
NOM_ATTR_METRIC_SPECN = 0x093F
NOM_ATTR_NU_CMPD_VAL_OBS = 0x094B
NOM_ATTR_NU_VAL_OBS = 0x0950
NOM_ATTR_SA_CALIB_I16 = 0x0964
NOM_ATTR_SA_CMPD_VAL_OBS = 0x0967
NOM_ATTR_SA_RANGE_PHYS_I16 = 0x096A
NOM_ATTR_SA_SPECN = 0x096D
NOM_ATTR_SA_VAL_OBS = 0x096E
NOM_ATTR_SCALE_SPECN_I16 = 0x096F
NOM_ATTR_SYS_TYPE = 0x0986
NOM_ATTR_TIME_ABS = 0x0987
NOM_ATTR_TIME_PD_SAMP = 0x098D
NOM_ATTR_TIME_REL = 0x098F
NOM_ATTR_TIME_STAMP_ABS = 0x0990
NOM_ATTR_TIME_STAMP_REL = 0x0991
NOM_ATTR_UNIT_CODE = 0x0996
NOM_ATTR_VMS_MDS_STAT = 0x09A7
NOM_ATTR_SA_FIXED_VAL_SPECN = 0x0A16
NOM_ATTR_TIME_PD_POLL = 0xF13E
NOM_ATTR_POLL_NU_PRIO_LIST = 0xF239
NOM_ATTR_POLL_RTSA_PRIO_LIST = 0xF23A

# -- attribute groups (polled_attr_grp) ----------------------------------------------------
NOM_ATTR_GRP_ALL = 0x0000
NOM_ATTR_GRP_AL_MON = 0x0801
NOM_ATTR_GRP_METRIC_VAL_OBS = 0x0803
NOM_ATTR_GRP_SYS_APPL = 0x080A
NOM_ATTR_GRP_SYS_ID = 0x080B
NOM_ATTR_GRP_VMO_DYN = 0x0810
NOM_ATTR_GRP_VMO_STATIC = 0x0811

# -- association profile ids (infrastructure partition) --------------------------------------
NOM_POLL_PROFILE_SUPPORT = 0x0001
NOM_MDIB_OBJ_SUPPORT = 0x0102
NOM_ATTR_POLL_PROFILE_EXT = 0xF001

# -- SaFixedValId ----------------------------------------------------------------------------
SA_FIX_INVALID_MASK = 1
SA_FIX_PACER_MASK = 2

# -- SaFlags ----------------------------------------------------------------------------------
SA_EXT_VAL_RANGE = 0x1000  # non-significant bits must be masked

# -- wave and numeric identifiers (NOM_PART_SCADA) ------------------------------------------
# ECG lead waves -> canonical lead names (edge_ecg.records.leads spelling)
ECG_LEADS = {
    0x0101: "I", 0x0102: "II", 0x013D: "III", 0x013E: "aVR", 0x013F: "aVL", 0x0140: "aVF",
    0x0103: "V1", 0x0104: "V2", 0x0105: "V3", 0x0106: "V4", 0x0107: "V5", 0x0108: "V6",
    0x0143: "V", 0x014B: "MCL",
}
NOM_PULS_OXIM_PLETH = 0x4BB4
NOM_RESP = 0x5000
NOM_PRESS_BLD_ART_ABP = 0x4A14
# a wave's TextId label is 0x0002xxxx (NLS_NOM_...) for these physio ids
WAVE_LABEL_PREFIX = 0x00020000
AUX_WAVES = {NOM_PULS_OXIM_PLETH: ("PLETH", "NU"), NOM_PRESS_BLD_ART_ABP: ("ABP", "mmHg")}

SCADA_NAMES = {
    0x0100: "NOM_ECG_ELEC_POTL", **{k: f"NOM_ECG_ELEC_POTL_{v.upper()}" for k, v in ECG_LEADS.items()},
    0x0300: "NOM_ECG_AMPL_ST", 0x0301: "NOM_ECG_AMPL_ST_I", 0x0302: "NOM_ECG_AMPL_ST_II",
    0x4182: "NOM_ECG_CARD_BEAT_RATE", 0x4261: "NOM_ECG_V_P_C_CNT", 0x480A: "NOM_PULS_RATE",
    0x4822: "NOM_PLETH_PULS_RATE", 0x4A04: "NOM_PRESS_BLD_NONINV", 0x4A05: "NOM_PRESS_BLD_NONINV_SYS",
    0x4A06: "NOM_PRESS_BLD_NONINV_DIA", 0x4A07: "NOM_PRESS_BLD_NONINV_MEAN", 0x4A14: "NOM_PRESS_BLD_ART_ABP",
    0x4BB0: "NOM_PULS_OXIM_PERF_REL", 0x4BB4: "NOM_PULS_OXIM_PLETH", 0x4BB8: "NOM_PULS_OXIM_SAT_O2",
    0x4B48: "NOM_TEMP", 0x5000: "NOM_RESP", 0x500A: "NOM_RESP_RATE", 0x5012: "NOM_AWAY_RESP_RATE",
    0x50B0: "NOM_AWAY_CO2_ET", 0x0015: "NOM_ECG_LEAD_LA", 0x0016: "NOM_ECG_LEAD_RA", 0x0017: "NOM_ECG_LEAD_LL",
}
OBJ_NAMES = {
    NOM_MOC_VMS_MDS: "NOM_MOC_VMS_MDS", NOM_MOC_VMO_METRIC_NU: "NOM_MOC_VMO_METRIC_NU",
    NOM_MOC_VMO_METRIC_SA_RT: "NOM_MOC_VMO_METRIC_SA_RT", NOM_MOC_VMO_AL_MON: "NOM_MOC_VMO_AL_MON",
    4106: "NOM_DEV_ANALY_SAT_O2_VMD", 4262: "NOM_DEV_ECG_VMD", 4429: "NOM_DEV_MON_PHYSIO_MULTI_PARAM_MDS",
    5134: "NOM_DEV_ARRHY_VMD", 5142: "NOM_DEV_ST_VMD", 5150: "NOM_DEV_PRESS_BLD_NONINV_VMD",
    61649: "NOM_OBJ_SETTING", 61693: "NOM_OBJ_NETWORK", 61902: "NOM_OBJ_SENSOR",
}

# -- alert codes (NOM_PART_EVT) --------------------------------------------------------------
EVENT_NAMES = {
    4: "NOM_EVT_ABSENT", 22: "NOM_EVT_DISCONN", 40: "NOM_EVT_HI", 62: "NOM_EVT_LO", 70: "NOM_EVT_MALF",
    74: "NOM_EVT_NOISY", 268: "NOM_EVT_LEAD_DISCONN", 274: "NOM_EVT_LEADS_OFF", 308: "NOM_EVT_SENSOR_DISCONN",
    310: "NOM_EVT_SENSOR_MALF", 358: "NOM_EVT_MSMT_INOP", 380: "NOM_EVT_SIG_LO", 384: "NOM_EVT_SIG_UNANALYZEABLE",
    432: "NOM_EVT_WAVE_ARTIF_ERR", 434: "NOM_EVT_SIG_QUALITY", 442: "NOM_EVT_WAVE_OSCIL_ABSENT",
    3072: "NOM_EVT_APNEA", 3076: "NOM_EVT_ECG_ASYSTOLE", 3078: "NOM_EVT_ECG_BEAT_MISSED",
    3082: "NOM_EVT_ECG_BIGEM", 3086: "NOM_EVT_ECG_BRADY_EXTREME", 3108: "NOM_EVT_ECG_PAUSE",
    3122: "NOM_EVT_ECG_TACHY_EXTREME", 3158: "NOM_EVT_ECG_CARD_BEAT_RATE_IRREG", 3192: "NOM_EVT_ECG_SV_TACHY",
    3206: "NOM_EVT_ECG_V_P_C_RonT", 3208: "NOM_EVT_ECG_V_P_C_MULTIFORM", 3210: "NOM_EVT_ECG_V_P_C_PAIR",
    3212: "NOM_EVT_ECG_V_P_C_RUN", 3220: "NOM_EVT_ECG_V_RHY", 3224: "NOM_EVT_ECG_V_TACHY",
    3226: "NOM_EVT_ECG_V_TACHY_NON_SUST", 3236: "NOM_EVT_ECG_V_TRIGEM", 3246: "NOM_EVT_DESAT",
    3252: "NOM_EVT_ECG_V_P_C_RATE", 6144: "NOM_EVT_STAT_AL_OFF", 6182: "NOM_EVT_STAT_ECG_AL_ALL_OFF",
    6184: "NOM_EVT_STAT_ECG_AL_SOME_OFF", 6224: "NOM_EVT_STAT_LEARN", 6228: "NOM_EVT_STAT_STANDBY",
    61444: "NOM_EVT_ECG_V_FIB_TACHY", 61766: "NOM_EVT_BRADY", 61768: "NOM_EVT_TACHY",
}
# monitor alert codes that name the same condition as one of our rhythm alarms (for the side-by-side table)
EVENT_TO_RHYTHM = {
    3076: "asystole", 3086: "extreme_bradycardia", 3122: "extreme_tachycardia",
    3224: "ventricular_tachycardia", 61444: "ventricular_fibrillation",
}

# -- AlertType / AlertState --------------------------------------------------------------------
ALERT_TYPES = {
    0: "NO_ALERT", 1: "LOW_PRI_T_AL", 2: "MED_PRI_T_AL", 4: "HI_PRI_T_AL",
    256: "LOW_PRI_P_AL", 512: "MED_PRI_P_AL", 1024: "HI_PRI_P_AL",
}
ALERT_STATE_BITS = {
    0x8000: "AL_INHIBITED", 0x4000: "AL_SUSPENDED", 0x2000: "AL_LATCHED", 0x1000: "AL_SILENCED_RESET",
    0x0400: "AL_DEV_IN_TEST_MODE", 0x0200: "AL_DEV_IN_STANDBY", 0x0100: "AL_DEV_IN_DEMO_MODE", 0x0008: "AL_NEW_ALERT",
}
GEN_ALMON_INFO = 513
STR_ALMON_INFO = 516

# -- MeasurementState --------------------------------------------------------------------------
MS_INVALID = 0x8000
MS_QUESTIONABLE = 0x4000
MS_UNAVAILABLE = 0x2000
MS_DEMO_DATA = 0x0400

# -- units (NOM_PART_DIM) -> (symbol, factor to the unit edge-ecg uses) -------------------------
UNITS = {
    0x0000: ("NOS", 1.0), 0x0200: ("-", 1.0), 0x0220: ("%", 1.0), 0x0AA0: ("bpm", 1.0), 0x09E0: ("/min", 1.0),
    0x0AE0: ("rpm", 1.0), 0x0F20: ("mmHg", 1.0), 0x0F03: ("kPa", 1.0), 0x0892: ("ms", 1.0), 0x0512: ("mm", 1.0), 0x0880: ("s", 1.0),
    0x10A0: ("V", 1e6), 0x10B2: ("mV", 1e3), 0x10B3: ("uV", 1.0), 0x1140: ("degF", 1.0), 0x17A0: ("degC", 1.0),
}
NOM_DIM_DIMLESS = 0x0200
NOM_DIM_MILLI_VOLT = 0x10B2
NOM_DIM_MICRO_VOLT = 0x10B3
MICROVOLT_FACTOR = {0x10A0: 1e6, 0x10B2: 1e3, 0x10B3: 1.0}  # ECG wave units -> microvolts


def scada_name(code: int) -> str:
    return SCADA_NAMES.get(code, f"0x{code:04X}")


def event_name(code: int) -> str:
    return EVENT_NAMES.get(code, f"0x{code:04X}")


def alert_type_name(value: int) -> str:
    return ALERT_TYPES.get(value, f"0x{value:04X}")


def alert_state_names(value: int) -> tuple[str, ...]:
    return tuple(name for bit, name in ALERT_STATE_BITS.items() if value & bit)


def unit_symbol(code: int) -> str:
    return UNITS.get(code, (f"0x{code:04X}", 1.0))[0]
